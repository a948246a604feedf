"""A plain ``nn.Module`` of a user's package: it knows nothing of torchmatrix.

``build(width=...)`` returns a small sequence tagger over two inputs, float features
``(b, t, 16)`` and integer token ids ``(b, t)``, as an in-house model would take them.
torchmatrix drives it from a scenario's ``[inputs."tmx_example_nets.nets:build"]`` table.
"""
import torch
from torch import nn


class SequenceTagger(nn.Module):
    """Token embedding plus projected features, a GRU, and per-step scores."""

    def __init__(self, features: int = 16, vocab: int = 100, width: int = 32, tags: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.project = nn.Linear(features, width)
        self.rnn = nn.GRU(width, width, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, tags)

    def forward(self, features: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(token_ids) + self.project(features)  # (b, t, width)
        h, _ = self.rnn(h)  # (b, t, width)
        return self.head(self.norm(h))  # (b, t, tags)


def build(width: int = 32, tags: int = 8) -> nn.Module:
    """The example tagger (a plain nn.Module)."""
    return SequenceTagger(width=width, tags=tags)
