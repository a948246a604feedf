"""Parameters and FLOPs of zoo models at a given batch and size: what a case costs.

For each model: parameters (total, and per top-level child module), FLOPs of one train
step (forward, loss and backward) and of one eval call (``infer`` under no_grad), counted by
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and SDPA; elementwise ops
are not counted, as in fvcore and PyTorch's own counter). Needs a torch that has the counter
(2.1+); the figures are identical on every machine. One correction: the counter's own formula
for a convolution's backward ignores groups (a depthwise 3x3 conv of 64 channels at 32x32
counted 76.7 MFLOP of backward against its 1.2 MFLOP forward on torch 2.15), so each gradient
a ``convolution_backward`` computes is counted here as one forward convolution of the same
shapes, whose weight shape carries the channels per group.

    python benchmarks/bench_zoo_cost.py --models 'cbam_classifier_*' --size 224 --batch 1
    python benchmarks/bench_zoo_cost.py --models ris_music_base --size default --json out.json
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import models  # noqa: E402


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """Input and weight gradients of a convolution: each costs its forward's FLOPs (groups included)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False,
                              custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})
    with counter:
        fn()
    return int(counter.get_total_flops())


def cost(name: str, batch_size: int, size) -> dict:
    """Parameters and FLOPs of ``name`` at ``batch_size`` and ``size`` (``"default"``: its first default)."""
    spec = models.get_spec(name)
    if size == "default":
        size = spec.default_sizes[0]
    model = spec.build()
    models.init_parameters(model, 0)
    inputs, target = model.example_inputs(batch_size, size, models.SeededGenerator(0))
    children = {child: sum(p.numel() for p in module.parameters()) for child, module in model.named_children()}

    def train():
        model.train()
        model.zero_grad(set_to_none=True)
        model.loss(model(*inputs), target).backward()

    def infer():
        model.eval()
        with torch.no_grad():
            model.infer(*inputs)

    return {"model": name, "batch_size": batch_size, "size": size,
            "params": sum(p.numel() for p in model.parameters()),
            "params_by_child": {k: v for k, v in children.items() if v},
            "train_flops": _flops(train), "eval_flops": _flops(infer)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="names or globs (fault twins included)")
    parser.add_argument("--size", default="default", help="int, 'HxW' or 'default' (the model's first default size)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    size = int(args.size) if args.size.isdigit() else args.size
    torch.set_num_threads(1)
    rows = [cost(name, args.batch, size) for name in models.list_models(args.models, include_faults=True)]
    print("%-34s %6s %10s %12s %12s" % ("model", "size", "params(M)", "train GFLOP", "eval GFLOP"))
    for row in rows:
        print("%-34s %6s %10.3f %12.3f %12.3f" % (row["model"], row["size"], row["params"] / 1e6,
                                                row["train_flops"] / 1e9, row["eval_flops"] / 1e9))
        children = ", ".join("%s %.3fM" % (k, v / 1e6) for k, v in row["params_by_child"].items())
        print("    params by child: %s" % children)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
