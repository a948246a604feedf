"""The record contract between the runner and the analysis side.

``schema``: the ``Record`` and its flat columns; ``parts``: one dataclass per part of a
record; ``store``: the JSONL files (append, read, resume, the output lock). Standard
library only: the runner imports it on Python 3.9 + PyTorch 1.10.
"""
