"""Task accuracy: a short fixed-seed training run on the model's synthetic task.

Asked for by a scenario's ``[task]`` table; runs for train-mode cases with the case's
precision and checkpoint mode, so a precision that trains worse shows up here. The
metric (the model's ``task_metric``: PSNR, top-1, angle RMSE...) is taken on a fixed
held-out batch before and after ``steps`` Adam steps on fresh seeded batches.
"""
from typing import Dict

import torch

import harness.sources  # noqa: F401 - registers the model sources (SOURCE:NAME, package.module:fn) with the zoo
import models
from harness.runner import fault_hooks, precision


def _metric(model, inputs, target, device: str, prec: str) -> float:
    model.eval()
    with torch.no_grad(), precision.autocast(device, prec):
        value = model.task_metric(model.infer(*inputs), target)
    model.train()
    return float(value)


def run_task(case: Dict, settings: Dict) -> Dict:
    """Train briefly on the synthetic task; the metric before and after."""
    task = settings["task"]
    seed = int(settings["measure"].get("seed", 0))
    device, prec = case["device"], case["precision"]
    model = models.create_model(case["model"], case["size"], (settings.get("model_options") or {}).get(case["model"]))
    model = fault_hooks.wrap(fault_hooks.MODEL_BUILT, case, model)
    models.init_parameters(model, seed)
    held_inputs, held_target = model.task_batch(task["eval_batch_size"], case["size"],
                                                models.SeededGenerator(seed + 1000))
    model, held_inputs, held_target = precision.prepare(model, held_inputs, held_target, prec, device)
    model.set_grad_checkpointing(case["checkpoint"])
    optimizer = torch.optim.Adam(model.parameters(), lr=task["lr"])
    torch.manual_seed(seed)
    before = _metric(model, held_inputs, held_target, device, prec)
    gen = models.SeededGenerator(seed + 2000)
    model.train()
    for _ in range(task["steps"]):
        inputs, target = model.task_batch(task["batch_size"], case["size"], gen)
        inputs, target = precision.cast_batch(inputs, target, prec, device)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast(device, prec):
            loss = model.loss(model(*inputs), target)
        loss.backward()
        optimizer.step()
    after = _metric(model, held_inputs, held_target, device, prec)
    return {"metric": model.task_metric_name, "higher_is_better": bool(model.task_higher_is_better),
            "before": before, "after": after, "steps": task["steps"]}
