"""Sharding: ``split`` divides a scenario's cases into N shards of about equal cost
(``run --shard K/N``); ``merge`` joins the shards' output folders again
(``torchmatrix merge``). Standard library only.
"""
