"""The token language models' shared parts: the synthetic task (induction copies) and
``TokenLanguageModel``, the interface the attention, ring-attention and selective-scan LMs share.

A sequence is a random segment repeated once (after one filler token when the length
is odd), so the second copy is predictable by looking back (what induction heads learn),
which ``second_copy_accuracy`` scores. Targets are next tokens with ``IGNORE_INDEX`` where there is nothing to
predict (the last position, padding).
"""
from typing import Any, Optional

import torch
import torch.nn.functional as F

from models._base import ZooModel, at_least_float32

PAD_ID = 0
IGNORE_INDEX = -100


def induction_tokens(gen, batch_size: int, seq_len: int, vocab_size: int) -> torch.Tensor:
    """(b, t) sequences: an optional filler token, then a random segment repeated twice."""
    half = seq_len // 2
    segment = gen.integers(1, vocab_size, (batch_size, half))
    parts = [segment, segment]
    if seq_len % 2:
        parts.insert(0, gen.integers(1, vocab_size, (batch_size, 1)))
    return torch.cat(parts, dim=1)


def next_token_targets(tokens: torch.Tensor, pad_id: Optional[int] = PAD_ID) -> torch.Tensor:
    """(b, t) next-token targets: position i holds token i+1; padding and the last position ignored."""
    target = torch.full_like(tokens, IGNORE_INDEX)
    target[:, :-1] = tokens[:, 1:]
    if pad_id is None:
        return target
    return target.masked_fill(target == pad_id, IGNORE_INDEX)


def second_copy_accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Greedy next-token accuracy where the second copy of the segment is predictable.

    For a length-t sequence with segment length t // 2, the second copy starts at
    t - t // 2; its first token cannot be predicted, the others can by looking back.
    ``logits`` may be longer than ``target`` (cached decode steps appended): they are cut.
    """
    seq_len = target.shape[1]
    start = seq_len - seq_len // 2
    pred = logits[:, start:seq_len - 1].argmax(dim=-1)  # (b, half - 1)
    want = target[:, start:seq_len - 1]
    valid = want != IGNORE_INDEX
    return float((pred.eq(want) & valid).sum().item()) / max(int(valid.sum().item()), 1)


class TokenLanguageModel(ZooModel):
    """Token ids ``(b, t)`` in, next-token logits ``(b, t, vocab)`` out, cross-entropy against the
    next token, the induction-copy task.

    Configs have ``vocab_size``, ``min_seq_len`` and ``max_seq_len``, and optionally ``padding``
    (default True): the benchmark inputs then left-pad every second sequence by a quarter, so the
    key-padding masks do work.
    """

    size_axis = "sequence length in tokens"
    task_metric_name = "second_copy_accuracy"
    task_higher_is_better = True

    @classmethod
    def size_error(cls, config: Any, size: Any) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and not config.min_seq_len <= size <= config.max_seq_len:
            reason = "sequence length must be between %d and max_seq_len %d, got %d" % (
                config.min_seq_len, config.max_seq_len, size)
        return reason

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        tokens = gen.integers(1, self.config.vocab_size, (batch_size, size))
        if getattr(self.config, "padding", True):
            tokens[1::2, : size // 4] = PAD_ID
        return (tokens,), next_token_targets(tokens)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(at_least_float32(outputs).reshape(-1, outputs.shape[-1]), target.reshape(-1),
                               ignore_index=IGNORE_INDEX)

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        tokens = induction_tokens(gen, batch_size, size, self.config.vocab_size)
        return (tokens,), next_token_targets(tokens)

    def task_metric(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        return second_copy_accuracy(outputs, target)
