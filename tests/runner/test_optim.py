"""``runner.optim``: the model's own optimizer, clipping after the kept gradients, the record's words."""
import torch
from torch import nn

from harness.runner import optim, precision


class Clipped(nn.Module):
    grad_clip_norm = 1e-3

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(x)

    def loss(self, out, target):
        return ((out - target) ** 2).sum()


def test_a_plain_module_trains_with_adamw_and_kept_gradients_are_the_unclipped_ones():
    torch.manual_seed(0)
    model = Clipped()
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    train = optim.TrainStep(model, model, (x,), y, "cpu", "fp32", precision.autocast)
    assert isinstance(train.optimizer, torch.optim.AdamW) and train.scaler is None
    assert train.description == "AdamW(lr=0.0001, weight_decay=0.01), grad norm clipped to 0.001"
    before = model.lin.weight.detach().clone()
    kept = train.run(keep=lambda out: {n: p.grad.clone() for n, p in model.named_parameters()})
    full_norm = torch.cat([g.flatten() for g in kept.values()]).norm()
    assert full_norm > 1e-2  # what backward gave; the optimizer then saw it clipped to 1e-3
    assert float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm()) <= 1e-3 * 1.0001
    assert not torch.equal(before, model.lin.weight)


def test_a_zoo_model_declares_its_optimizer_and_groups():
    import models

    model = models.create_model("attention_gqa_tiny")
    train = optim.TrainStep(model, model, (), None, "cpu", "fp32", precision.autocast)
    assert type(train.optimizer).__name__ == {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD"}[model.optimizer_name]
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in train.optimizer.param_groups) == n_trainable
