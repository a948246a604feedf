"""FLOPs of a case's step, counted on one extra step after the timed samples (never inside them).

What is counted (matrix products, convolutions and their gradients, fused SDPA; 2 FLOPs per
multiply-add) and how each of the two counters counts it: docs/flops.md, "What is counted"
and "The two counters". ``count_step`` uses the first counter this build has
(``count_flop_counter_mode``, else ``count_profiler``); ``record_part`` adds achieved FLOP/s
and the share of the environment's measured matmul peak (``harness.runner.roofline``).
"""
import contextlib
import time
from collections import defaultdict, deque
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from harness import precisions
from harness.runner import profiler_session
from harness.runner.memory import memory_session

FLOP_COUNTER_MODE = "torch.utils.flop_counter.FlopCounterMode"
PROFILER_COUNTER = "torch.profiler shapes (torchmatrix)"
#: What the count holds, in words (the record's ``flops.covers``).
COVERS = ("matmul (mm, addmm, bmm, baddbmm), convolution forward and backward (input and weight gradients, "
          "groups included), fused SDPA forward/backward; 2 FLOPs per multiply-add; train: forward + backward "
          "(recomputation included), optimizer step not counted; eval: forward")


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def compute_dtype(precision: str) -> str:
    """The dtype a case's matrix products run in: amp precisions use their low dtype."""
    return precisions.get(precision).dtype_name


# --- FlopCounterMode ------------------------------------------------------------------

def has_flop_counter_mode() -> bool:
    """Whether this build has ``torch.utils.flop_counter.FlopCounterMode`` with ``custom_mapping``."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return False
    import inspect

    try:
        return "custom_mapping" in inspect.signature(FlopCounterMode.__init__).parameters
    except (TypeError, ValueError):
        return False


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """Input and weight gradients of a convolution: each costs its forward's FLOPs (groups included)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


class _TotalOnly:
    """Stands in for ``FlopCounterMode``'s module tracker where a build has one (``mod_tracker``): every
    FLOP goes to the ``"Global"`` total, the only figure read here. The tracker only attributes FLOPs to
    modules, through hooks on every module call and on the gradients of its inputs; under reentrant
    checkpointing those hooks raise ("Expected gradient function to be set": 5 train cases of the
    default matrix lost their count on the newest torch), and elsewhere they cost 6-27% of the counted
    step with the same total (docs/flops.md, "The two counters")."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def count_flop_counter_mode(step: Callable[[], Any], profile_memory: bool = False) -> int:
    """FLOPs of one call of ``step`` under ``FlopCounterMode`` (conv backward corrected for groups; no
    per-module attribution, ``_TotalOnly``); ``profile_memory``: inside a ``memory.memory_session`` too
    (see ``count_step``)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False,
                              custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})
    if hasattr(counter, "mod_tracker"):  # feature, not version: older builds track modules otherwise, and keep it
        counter.mod_tracker = _TotalOnly()
    with (memory_session() if profile_memory else contextlib.nullcontext()), counter:
        step()
    return int(counter.get_total_flops())


# --- the profiler counter ---------------------------------------------------------------

_MATMUL = {"mm", "addmm", "_addmm_activation", "bmm", "baddbmm"}
_CONV_FORWARD = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                 "convolution", "_convolution"}
_SDPA_FUSED = ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
               "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu",
               "_scaled_dot_product_fused_attention_overrideable")


def _matmul_flops(name: str, shapes: List[List[int]]) -> Optional[int]:
    if name in ("addmm", "_addmm_activation", "baddbmm"):
        shapes = shapes[1:]
    if len(shapes) < 2 or not shapes[0] or not shapes[1]:
        return None
    a, b = shapes[0], shapes[1]
    if name == "mm" or name in ("addmm", "_addmm_activation"):
        return 2 * a[0] * a[1] * b[1] if len(a) == 2 and len(b) == 2 else None
    return 2 * a[0] * a[1] * a[2] * b[2] if len(a) == 3 and len(b) == 3 else None


def _sdpa_flops(name: str, shapes: List[List[int]]) -> Optional[int]:
    if name.endswith("_backward"):
        shapes = shapes[1:]  # grad_out first
    if len(shapes) < 3 or any(len(s) != 4 for s in shapes[:3]):
        return None
    (b, h, s_q, d_q), (_, _, s_k, _), (_, _, _, d_v) = shapes[:3]
    forward_products = [d_q, d_v]  # scores = q k^T, out = p v
    if name.endswith("_backward"):  # recomputed scores, dP, dV, dQ, dK
        forward_products = [d_q, d_v, d_v, d_q, d_q]
    return sum(2 * b * h * s_q * s_k * d for d in forward_products)


def _norm(shape) -> Tuple[int, ...]:
    """A shape without its 1s: 1.10 runs a 1-d convolution as a 2-d one of height 1, so its backward
    op shows (N, C, 1, L) where the module saw (N, C, L)."""
    return tuple(int(d) for d in shape if int(d) != 1)


class _ConvCalls:
    """Forward hooks on the ``nn.ConvNd`` modules of a model: each call's shapes, in call order."""

    def __init__(self, model: Optional[torch.nn.Module]):
        self.calls: Dict[Tuple, deque] = defaultdict(deque)   # (input, weight) shapes -> forward FLOPs, in order
        self.by_weight: Dict[Tuple, List[Dict]] = defaultdict(list)  # weight shape -> calls
        self.handles = []
        if model is not None:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.conv._ConvNd):
                    self.handles.append(module.register_forward_hook(self._hook))

    def _hook(self, module, inputs, output) -> None:
        x, w = inputs[0], module.weight
        if not isinstance(x, torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        # A transposed conv's weight is (in, out/groups, k...): each input element meets out/groups x k.
        per = _prod(w.shape[1:])
        flops = 2 * _prod(x.shape if module.transposed else output.shape) * per
        self.calls[(tuple(x.shape), tuple(w.shape))].append(flops)
        if torch.is_grad_enabled():  # only a call that records its graph has a backward (not checkpointing's first)
            call = {"in": _norm(x.shape), "w": _norm(w.shape), "out": _norm(output.shape), "flops": flops,
                    "input_grad": bool(x.requires_grad)}
            self.by_weight[call["w"]].append(call)

    def forward(self, shapes: List[List[int]]) -> Optional[int]:
        if len(shapes) < 2:
            return None
        queue = self.calls.get((tuple(shapes[0]), tuple(shapes[1])))
        if not queue:
            return None
        return queue.popleft() if len(queue) > 1 else queue[0]

    def backward(self, shapes: List[List[int]]) -> Optional[Dict]:
        present = {_norm(s) for s in shapes if s}
        for w, calls in self.by_weight.items():
            if w in present:
                for call in calls:
                    if call["out"] in present and (call["in"] in present or len(present) < 3):
                        return call
        # backward_weights of 1.10 lists (grad_out, input) and no weight: match on those two
        for calls in self.by_weight.values():
            for call in calls:
                if call["out"] in present and call["in"] in present:
                    return call
        return None

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _is_conv_backward(name: str) -> bool:
    """An aten convolution backward (``convolution_backward``, 1.10's ``mkldnn_convolution_backward``,
    ``thnn_conv2d_backward``, ...), not an autograd node (``ConvolutionBackward0``)."""
    return name.startswith("aten::") and "conv" in name and "backward" in name and "double" not in name


def _conv_backward_grads(name: str, child_names: List[str], call: Dict) -> int:
    """How many gradients (input, weight) this backward op computed."""
    if "backward_input" in name or "backward_weight" in name:
        return 1
    split = [c for c in child_names if "backward_input" in c or "backward_weight" in c]
    if split:
        return len(split)
    return 1 + int(call["input_grad"])


def parents(ops: List[profiler_session.Op]) -> List[Optional[int]]:
    """Each op's parent (an index into ``ops``, or None) by time containment on its thread, as
    torch's own parse links them (``EventList._populate_cpu_children``): ops in (start, -end) order,
    a stack per thread. Async ops have no parent and are no one's."""
    parent: List[Optional[int]] = [None] * len(ops)
    order = sorted((i for i, op in enumerate(ops) if not op.is_async),
                   key=lambda i: (ops[i].thread, ops[i].start_ns, -ops[i].end_ns))
    stack: List[int] = []
    thread = None
    for i in order:
        op = ops[i]
        if op.thread != thread:
            stack, thread = [], op.thread
        while stack:
            top = ops[stack[-1]]
            if op.start_ns >= top.end_ns or op.end_ns > top.end_ns:  # cannot be inside it
                stack.pop()
            else:
                parent[i] = stack[-1]
                break
        stack.append(i)
    return parent


def _child_names(ops: List[profiler_session.Op], parent: List[Optional[int]]) -> Dict[int, List[str]]:
    """Op index -> its children's short names, where an op whose only child has its own name is
    replaced by that child's children (torch's parse merges such duplicates, ``_remove_dup_nodes``)."""
    children: Dict[int, List[int]] = defaultdict(list)
    for i, p in enumerate(parent):
        if p is not None:
            children[p].append(i)

    def names(i: int) -> List[str]:
        kids = children.get(i, [])
        while len(kids) == 1 and ops[kids[0]].name == ops[i].name:
            kids = children.get(kids[0], [])
        return [_short(ops[k].name) for k in kids]

    return {i: names(i) for i in children}


def _inside_counted(i: int, ops, parent, counted: Dict[int, bool], last: Optional[Tuple[int, int]]) -> bool:
    """Whether op ``i`` runs inside an op already counted: one of its parents, or the latest counted
    op of its thread, in whose time range it starts. The second test is needed: 1.13's and 2.1's
    profilers now and then record an op ending a clock tick past its parent (``aten::convolution``
    under a counted ``aten::conv2d`` then came out counted twice), and only the start is compared."""
    p = parent[i]
    while p is not None:
        if counted.get(p):
            return True
        p = parent[p]
    if last is None:
        return False
    start, end = ops[i].start_ns, ops[i].end_ns
    return last[0] <= start < last[1] and (start, end) != last


def _short(name: str) -> str:
    return name[len("aten::"):] if name.startswith("aten::") else name


def _is_counted_kind(op_name: str) -> bool:
    name = _short(op_name)
    return name in _MATMUL or name in _CONV_FORWARD or _is_conv_backward(op_name) or name.startswith(_SDPA_FUSED)


def count_profiler(step: Callable[[], Any], model: Optional[torch.nn.Module] = None,
                   profile_memory: bool = False) -> Tuple[int, Dict[str, int]]:
    """FLOPs of one call of ``step`` read from the profiler's op shapes, and the ops of the
    counted kinds it could not count (name -> calls): see the module docstring. The records are
    read raw (``harness.runner.profiler_session``), in time linear in their number but for one
    sort. ``profile_memory``: the session records memory too (a ``memory.memory_session``; see
    ``count_step``)."""
    convs = _ConvCalls(model)
    try:
        session = (memory_session(record_shapes=True) if profile_memory
                   else profiler_session.session(record_shapes=True, profile_memory=False))
        with session as recording:
            step()
    finally:
        convs.close()
    ops = recording.ops()
    parent = parents(ops)
    children = _child_names(ops, parent)
    counted: Dict[int, bool] = {}
    last_counted: Dict[int, Tuple[int, int]] = {}  # thread -> (start_ns, end_ns) of the latest counted op
    total = 0
    uncounted: Dict[str, int] = defaultdict(int)
    for i in sorted(range(len(ops)), key=lambda k: (ops[k].start_ns, -ops[k].end_ns)):
        op = ops[i]
        if not _is_counted_kind(op.name):
            continue  # counting nothing, it hides nothing
        name = _short(op.name)
        if _inside_counted(i, ops, parent, counted, last_counted.get(op.thread)):
            continue
        shapes = op.shapes()
        if name in _MATMUL:
            flops = _matmul_flops(name, shapes)
        elif name in _CONV_FORWARD:
            flops = convs.forward(shapes)
        elif _is_conv_backward(op.name):
            call = convs.backward(shapes)
            flops = call["flops"] * _conv_backward_grads(name, children.get(i, []), call) if call else None
        else:
            flops = _sdpa_flops(name, shapes)
        counted[i] = True  # what it calls is part of it, counted or not
        last_counted[op.thread] = (op.start_ns, op.end_ns)
        if flops is None:
            uncounted[name] += 1
        else:
            total += flops
    return total, dict(uncounted)


# --- the record's part -------------------------------------------------------------------

def count_step(step: Callable[[], Any], model: Optional[torch.nn.Module] = None,
               counter: str = "auto", profile_memory: bool = False) -> Dict[str, Any]:
    """Count one extra call of ``step``: ``{"per_iter", "tool", "covers", "uncounted", "wall_s"}``, or
    ``{"error", "tool", "wall_s"}`` when the counter failed (the case stays ok). ``counter``:
    ``auto`` (FlopCounterMode where this build has it, else the profiler counter), ``flop_counter_mode``
    or ``profiler``. ``profile_memory``: the step runs in a ``memory.memory_session``, so that it is
    also the first of the tensor peak's two sessions (``memory.tensor_peak_bytes(..., seen=True)``):
    one profiled step fewer per case."""
    start = time.perf_counter()
    use_fcm = counter == "flop_counter_mode" or (counter == "auto" and has_flop_counter_mode())
    tool = FLOP_COUNTER_MODE if use_fcm else PROFILER_COUNTER
    out: Dict[str, Any] = {"tool": tool}
    try:
        if use_fcm:
            out["per_iter"] = count_flop_counter_mode(step, profile_memory)
        else:
            out["per_iter"], uncounted = count_profiler(step, model, profile_memory)
            if uncounted:
                out["uncounted"] = ["%s x%d" % kv for kv in sorted(uncounted.items())]
        out["covers"] = COVERS
    except Exception as exc:  # noqa: BLE001 - a failed count is reported, the case stays ok
        out["error"] = "%s: %s" % (type(exc).__name__, str(exc).strip().split("\n")[0][:300])
    out["wall_s"] = time.perf_counter() - start
    return out


def record_part(counted: Optional[Dict[str, Any]], median_s: Optional[float], precision: str, device: str,
                rooflines: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The record's ``flops`` part: the count, achieved FLOP/s over the timed median and the
    percentage of this device's measured matmul peak in the case's compute dtype."""
    if counted is None:
        return None
    part = dict(counted)
    per_iter = part.get("per_iter")
    if per_iter is None or not median_s or median_s <= 0:
        return part
    part["achieved_per_s"] = per_iter / median_s
    dtype = compute_dtype(precision)
    roof = ((rooflines or {}).get(device) or {}).get("matmul") or {}
    peak = (roof.get(dtype) or {}).get("flops_per_s")
    if peak:
        part["peak_dtype"] = dtype
        part["peak_per_s"] = peak
        part["peak_pct"] = 100.0 * part["achieved_per_s"] / peak
    return part
