"""The runner: runs inside every PyTorch environment (Python 3.9 + torch 1.10 and up).

``manager`` drives a scenario's cases through ``worker`` subprocesses; a worker runs
``execute.run_case`` for each: ``precision`` (casts, autocast), ``timing``,
``speed_probe``, ``memory``, ``accuracy``, ``task``; ``envinfo`` describes the
environment; ``fault_hooks`` declares where a benchmark's injected fault may act (nowhere in
an ordinary run). It imports only the standard library, torch, numpy (and tomli), and never
the analysis side.
"""
