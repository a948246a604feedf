# As the zoo's tests: tiny library models run as fast on one intra-op thread, and two on a busy
# 2-core machine spin-wait on each other.
from tests.models.conftest import _one_thread  # noqa: F401 - an autouse fixture, used by pytest
