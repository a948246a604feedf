import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # As the zoo's tests (tests/models/conftest.py): tiny library models run as fast on one
    # intra-op thread, and two on a busy 2-core machine spin-wait on each other.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
