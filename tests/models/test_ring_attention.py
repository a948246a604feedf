"""Model-specific tests of ring attention (models/ring_attention.py, seed 003).

Runs on torch 1.10 and the newest: the ring (online softmax over rotated key/value
blocks, hand-written backward) equals full causal attention in float64, values and
gradients, for any sequence length and ring size; float64 stays float64 inside it; it
never holds a (t, t) matrix; the LM is causal and learns the induction task; bf16
stays close to fp32; the mask-dtype fault twin gives NaN in bf16/fp16 and nothing
worse than the healthy model in fp32.
"""
import dataclasses

import pytest
import torch

import models
from harness.runner.precision import autocast
from models import SeededGenerator, init_parameters
from models._attention import causal_mask, math_attention
from models._tokens import PAD_ID
from models.ring_attention import RingAttentionLM, ring_attention, ring_layout

assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
TINY, BASE, FAULT = "ring_attention_tiny", "ring_attention_base", "ring_attention_mask_dtype_fault_tiny"
BF16_ATOL = 0.1


def _build(name=TINY, seed=0, **changes):
    config = dataclasses.replace(models.get_spec(name).config, **changes)
    model = RingAttentionLM(config)
    init_parameters(model, seed)
    return model.eval()


def _qkv(b, h, t, d, seed, dtype=torch.float64):
    gen = SeededGenerator(seed)
    return [gen.normal((b, h, t, d)).to(dtype).requires_grad_() for _ in range(3)]


def _full_causal(q, k, v, scale, keep=None):
    """The reference: one (t, t) causal mask (and key padding, own position kept) over the full matrix."""
    t = q.shape[2]
    mask = causal_mask(t, t, None)[None, None]
    if keep is not None:
        mask = mask & (keep[:, None, None, :] | torch.eye(t, dtype=torch.bool))
    return math_attention(q, k, v, mask, scale)


def _padded_tokens(size=32, seed=0):
    (tokens,), target = _build().example_inputs(2, size, SeededGenerator(seed))
    return tokens, target


def test_registered_tiny_base_and_the_fault_is_flagged():
    names = set(models.list_models("ring_attention_*", include_faults=True))
    assert {TINY, BASE, FAULT} <= names
    assert models.get_spec(FAULT).fault and FAULT not in models.list_models("ring_attention_*")
    base = models.get_spec(BASE).config
    assert base.default_sizes == (16, 256, 4096) and base.max_seq_len >= 4096 and base.n_ring == 8


@pytest.mark.parametrize("t,n_ring", [(32, 4), (17, 4), (5, 4), (3, 8), (16, 1), (9, 3), (40, 8)])
@pytest.mark.parametrize("padding", [False, True])
def test_ring_equals_full_causal_attention_in_float64(t, n_ring, padding):
    q, k, v = _qkv(2, 3, t, 8, seed=t * 10 + n_ring)
    keep = None
    if padding:
        keep = torch.ones(2, t, dtype=torch.bool)
        keep[1, : max(t // 3, 1)] = False  # left padding: a query's own position stays visible
    got = ring_attention(q, k, v, n_ring, 0.7, keep)
    ref = _full_causal(q, k, v, 0.7, keep)
    assert got.dtype == torch.float64 and got.shape == (2, 3, t, 8)
    # 1e-12: float64 accumulators (float32 ones would be ~1e-7 off).
    assert_close(got, ref, rtol=1e-12, atol=1e-12)
    grad_out = SeededGenerator(t).normal((2, 3, t, 8)).double()
    got_grads = torch.autograd.grad(got, (q, k, v), grad_out)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad_out)
    for g, r in zip(got_grads, ref_grads):
        assert_close(g, r, rtol=1e-11, atol=1e-11)


def test_ring_backward_passes_gradcheck():
    q, k, v = _qkv(1, 2, 7, 3, seed=1)
    keep = torch.tensor([[False, False, True, True, True, True, True]])
    assert torch.autograd.gradcheck(lambda q, k, v: ring_attention(q, k, v, 3, 0.5, keep), (q, k, v))


def test_ring_layout_covers_the_sequence_with_at_most_n_ring_blocks():
    for t in range(1, 40):
        for n_ring in (1, 2, 3, 4, 8):
            block, n = ring_layout(t, n_ring)
            assert n <= n_ring and (n - 1) * block < t <= n * block


def test_low_precision_uses_float32_accumulators():
    q, k, v = (x.detach() for x in _qkv(2, 2, 24, 8, seed=3, dtype=torch.float32))
    ref = _full_causal(q.double(), k.double(), v.double(), 0.35)
    got = ring_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 4, 0.35)
    assert got.dtype == torch.bfloat16
    # Inputs rounded to bf16 and the p @ v products in bf16, but no bf16 running sums.
    assert (got.double() - ref).abs().max().item() < 0.05


def test_the_ring_holds_blocks_not_the_t_by_t_matrix():
    # Peak live tensor bytes of a forward + backward: the ring (8 blocks of 64) against
    # matmul-softmax attention's (t, t) scores and probabilities, at t = 512.
    from harness.runner.memory import tensor_peak_bytes

    q, k, v = _qkv(1, 2, 512, 16, seed=4, dtype=torch.float32)

    def step(fn):
        def run():
            out = fn(q, k, v)
            torch.autograd.grad(out.sum(), (q, k, v))
        return run

    ring_peak, _ = tensor_peak_bytes(step(lambda q, k, v: ring_attention(q, k, v, 8, 0.25)))
    full_peak, _ = tensor_peak_bytes(step(lambda q, k, v: _full_causal(q, k, v, 0.25)))
    t_by_t = 2 * 512 * 512 * 4  # one float32 (b, h, t, t) tensor
    assert full_peak >= t_by_t
    assert ring_peak < t_by_t / 2, (ring_peak, full_peak)


def test_ring_size_does_not_change_the_lm_in_float64():
    tokens, _ = _padded_tokens(size=29)
    ref = _build(n_ring=1).double()(tokens)
    for n_ring in (3, 4, 8):
        assert_close(_build(n_ring=n_ring).double()(tokens), ref, rtol=1e-10, atol=1e-10)


def test_explicit_scale_is_used():
    tokens, _ = _padded_tokens()
    model = _build()
    assert model.blocks[0].attn.scaling == 8 ** -0.5
    assert (_build(scale=0.7)(tokens) - model(tokens)).abs().max().item() > 1e-3


def test_shapes_padding_and_size_rules():
    model = _build()
    (tokens,), target = model.example_inputs(2, 19, SeededGenerator(0))
    assert (tokens[1, :4] == PAD_ID).all() and (tokens[0] != PAD_ID).all()
    logits = model(tokens)
    assert logits.shape == (2, 19, 32) and torch.isfinite(logits).all()
    spec = models.get_spec(TINY)
    assert spec.size_error(4) is None and spec.size_error(64) is None
    for bad in (3, 65, 0):
        reason = spec.size_error(bad)
        assert reason is not None and str(bad) in reason
        with pytest.raises(ValueError):
            model.example_inputs(1, bad, SeededGenerator(0))
    with pytest.raises(ValueError, match="t <= 64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="n_ring"):
        _build(n_ring=0)
    with pytest.raises(ValueError, match="heads"):
        _build(heads=5)


def test_future_tokens_do_not_change_past_logits():
    model = _build()
    tokens, _ = _padded_tokens(size=20)
    changed = tokens.clone()
    changed[:, 12:] = (changed[:, 12:] % 30) + 1
    assert_close(model(changed)[:, :12], model(tokens)[:, :12], rtol=1e-5, atol=1e-6)
    assert (model(changed)[:, 12:] - model(tokens)[:, 12:]).abs().max().item() > 1e-4


def test_healthy_model_runs_in_bf16_and_autocast_within_tolerance_of_fp32():
    tokens, _ = _padded_tokens()
    with torch.no_grad():
        ref = _build()(tokens)
        got = _build().to(torch.bfloat16)(tokens)
        with autocast("cpu", "amp_bf16"):
            amp = _build()(tokens)
    assert got.dtype == torch.bfloat16
    assert (got.float() - ref).abs().max().item() < BF16_ATOL
    assert (amp.float() - ref).abs().max().item() < BF16_ATOL


def test_short_training_learns_the_induction_task(train_on_task):
    before, after = train_on_task(_build(), steps=220, lr=1e-2, batch_size=8, size=20, eval_batch_size=64)
    assert before < 0.15, before  # chance is 1/31
    assert after > 0.5, after  # the phase change happens around step 150


# --- the mask-dtype fault twin -------------------------------------------------------

def test_fault_twin_is_finite_in_float32_and_float64_and_differs_only_on_padded_rows():
    tokens, _ = _padded_tokens()
    healthy, faulty = _build(), _build(FAULT)
    for dtype in (torch.float32, torch.float64):
        got = faulty.to(dtype)(tokens)
        assert torch.isfinite(got).all()
    # Unpadded rows never meet the mask: the twin equals the healthy model there.
    assert_close(faulty.float()(tokens)[0], healthy(tokens)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fault_twin_gives_nan_in_half_precision_where_the_healthy_model_does_not(dtype):
    tokens, _ = _padded_tokens()
    try:
        with torch.no_grad():
            healthy = _build().to(dtype)(tokens)
    except RuntimeError as exc:  # torch 1.10 has no fp16 LayerNorm on the CPU
        pytest.skip("this build cannot run %s on the CPU: %s" % (dtype, str(exc).split("\n")[0]))
    assert torch.isfinite(healthy).all()
    with torch.no_grad():
        faulty = _build(FAULT).to(dtype)(tokens)
    assert not torch.isfinite(faulty).all()
    # float32's minimum, cast to the query dtype as the audit's fix does, is -inf.
    assert torch.tensor(torch.finfo(torch.float32).min).to(dtype).item() == float("-inf")


def test_fault_twin_gives_nan_under_bf16_autocast():
    tokens, _ = _padded_tokens()
    with torch.no_grad(), autocast("cpu", "amp_bf16"):
        assert torch.isfinite(_build()(tokens)).all()
        assert not torch.isfinite(_build(FAULT)(tokens)).all()
