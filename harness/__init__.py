"""torchmatrix: benchmark and regression-test PyTorch models across releases.

Runner side (runs inside every PyTorch environment, Python 3.9 + torch 1.10 and up):
``scenario``, ``record``, ``envinfo``, ``measure``, ``precision``, ``accuracy``,
``execute``, ``worker``, ``manager``. It imports only the standard library, torch,
numpy and tomli. Analysis side (``report``, ``gate``): pandas, matplotlib, scipy; never torch.
"""
__version__ = "0.1.0"

#: Version of the result record (see ``harness.record``); bumped on incompatible change.
SCHEMA_VERSION = 1
