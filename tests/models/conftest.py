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
