import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Zoo tests drive tiny models: one intra-op thread is as fast, and two on a busy
    # 2-core machine spin-wait on each other (steps 50x slower were seen here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def train_on_task():
    """``train_on_task(model)``: the model's task metric on a held-out batch (``eval_batch_size``,
    default ``batch_size``) before and after ``steps`` Adam steps on its synthetic task (fixed
    seeds): ``(before, after)``."""
    from models import SeededGenerator

    def run(model, steps: int = 20, lr: float = 3e-3, batch_size: int = 4, size=16, eval_batch_size=None):
        torch.manual_seed(0)
        (x_eval,), y_eval = model.task_batch(eval_batch_size or batch_size, size, SeededGenerator(99))

        def evaluate():
            model.eval()
            with torch.no_grad():
                return model.task_metric(model.infer(x_eval), y_eval)

        before = evaluate()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = SeededGenerator(1)
        model.train()
        for _ in range(steps):
            (x,), y = model.task_batch(batch_size, size, gen)
            opt.zero_grad()
            model.loss(model(x), y).backward()
            opt.step()
        return before, evaluate()

    return run
