"""Scripts that look at the repository itself (``python -m tools.<name>`` from its root)."""
