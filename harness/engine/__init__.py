"""The engine: one coordinator runs a scenario's cases in N variants, in interleaved rounds.

A *variant* (``variant.Variant``) is a Python with its torch plus a code tree: the seven
environments of ``nox -s matrix`` (one revision), the two worktrees of ``ab`` (one environment),
or this interpreter alone (``harness run``). In each round every variant gets a fresh worker
process, and each case visits the variants one right after another in a rotating order
(``schedule``), so every comparison between variants is paired in time and only one case is timed
at any moment. The rounds share the scenario's sample budget; the first round also runs the
extras (tensor peak, FLOPs, references, checks, counts), later rounds time only.

Modules: ``schedule`` (how many rounds, each round's samples, the visit order), ``variant`` (a
variant and the cases its own code expands), ``cases`` (run in a variant: its cases as JSON),
``coordinator`` (the rounds, records, progress, Ctrl-C and resume). Design and figures:
docs/engine.md.
"""
