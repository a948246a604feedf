"""Scenario configuration: what a scenario file says and what it asks for.

``spec``: the file, loaded, validated and expanded into cases; ``settings``: its
settings tables with their defaults; ``models``: which models its patterns name and
whether each can run here; ``model_options``: its per-model ``[config]``/``[inputs]``
tables; ``requirements``: its ``[environment]`` table; ``gate_config``: its ``[gate]``
thresholds. Standard library only (plus ``tomli`` before Python 3.11).
"""
