"""Model-specific tests of the attention zoo (models/attention.py, seed 003).

Runs on torch 1.10 (explicit matmul-softmax fallback) and on 2.x (SDPA): masks of every
kind agree, causality and the sliding window hold, SDPA and the fallback agree with a
non-default scale through the whole LM, bf16/fp16/autocast stay close to fp32, the
induction task is learnt, and the mask-dtype fault twin breaks in bf16/fp16 where the
healthy model does not. The blocked sliding window and the chunked linear attention
equal, in float64, the banded full-matrix and per-position-state forms they replaced;
the unpadded ``*_causal`` twins pass no mask (``is_causal``) and equal the masked model.
The shared attention and masks (``models._attention``) are tested in test_layers.py.
"""
import dataclasses

import pytest
import torch

import models
from harness.runner.precision import autocast
from models import SeededGenerator, UnsupportedError, init_parameters
from models._attention import HAS_SDPA, causal_mask, rope_tables
from models._tokens import IGNORE_INDEX, PAD_ID, second_copy_accuracy
from models.attention import AttentionLM, causal_linear_attention

assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
VARIANTS = ["mha", "gqa", "mqa", "linear", "sliding_window"]
SOFTMAX_VARIANTS = ["mha", "gqa", "mqa", "sliding_window"]
CAUSAL_VARIANTS = ["mha", "gqa", "mqa"]
FAULT = "attention_mask_dtype_fault_tiny"
# bf16 keeps 8 mantissa bits: logits of magnitude ~2 move by a few 1e-2 through two blocks.
BF16_ATOL = 0.1


def _config(name, **changes):
    return dataclasses.replace(models.get_spec(name).config, **changes)


def _build(name, seed=0, **changes):
    model = AttentionLM(_config(name, **changes)) if changes else models.create_model(name)
    init_parameters(model, seed)
    return model.eval()


def _padded_tokens(size=20, seed=0):
    model = _build("attention_mha_tiny")
    (tokens,), target = model.example_inputs(2, size, SeededGenerator(seed))
    return tokens, target


def test_every_variant_is_registered_tiny_and_base_and_the_fault_is_flagged():
    names = set(models.list_models("attention_*", include_faults=True))
    for variant in VARIANTS:
        assert {"attention_%s_tiny" % variant, "attention_%s_base" % variant} <= names
    for variant in CAUSAL_VARIANTS:
        assert {"attention_%s_causal_tiny" % variant, "attention_%s_causal_base" % variant} <= names
        assert not models.get_spec("attention_%s_causal_base" % variant).config.padding
    assert FAULT in names and models.get_spec(FAULT).fault
    assert FAULT not in models.list_models("attention_*")
    base = models.get_spec("attention_mha_base").config
    assert base.default_sizes == (16, 256, 4096) and base.padding
    for name in models.list_models("attention_*_base"):
        assert models.get_spec(name).size_error(8192) is None  # the audit's longest sequence


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_padded_targets(variant):
    name = "attention_%s_tiny" % variant
    model = _build(name)
    (tokens,), target = model.example_inputs(2, 19, SeededGenerator(0))
    assert tokens.shape == (2, 19) and target.shape == (2, 19)
    # Row 1 is left-padded by 19 // 4 tokens; their targets and the last position are ignored.
    assert (tokens[1, :4] == PAD_ID).all() and (tokens[0] != PAD_ID).all()
    assert (target[1, :3] == IGNORE_INDEX).all() and (target[:, -1] == IGNORE_INDEX).all()
    assert torch.equal(target[0, :-1], tokens[0, 1:])
    logits = model(tokens)
    assert logits.shape == (2, 19, model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_size_rules_name_the_value_and_raise_valueerror():
    spec = models.get_spec("attention_gqa_tiny")
    model = spec.build()
    assert spec.size_error(4) is None and spec.size_error(8192) is None  # the audit's longest sequence
    for bad in (3, 8193, 0):
        reason = spec.size_error(bad)
        assert reason is not None and str(bad) in reason
        with pytest.raises(ValueError):
            model.example_inputs(1, bad, SeededGenerator(0))
    with pytest.raises(ValueError, match="t <= 8192"):
        model(torch.ones(1, 8193, dtype=torch.long))


def test_invalid_configs_raise_valueerror():
    with pytest.raises(ValueError, match="variant"):
        AttentionLM(_config("attention_mha_tiny", variant="ring"))
    with pytest.raises(ValueError, match="mask_kind"):
        AttentionLM(_config("attention_mha_tiny", mask_kind="float"))
    with pytest.raises(ValueError, match="kv_heads=3"):
        AttentionLM(_config("attention_gqa_tiny", kv_heads=3))
    with pytest.raises(ValueError, match="attn_impl"):
        AttentionLM(_config("attention_mha_tiny", attn_impl="flash"))
    with pytest.raises(ValueError, match="chunk"):
        AttentionLM(_config("attention_linear_tiny", chunk=0))
    with pytest.raises(ValueError, match="even"):
        AttentionLM(_config("attention_mha_tiny", dim=36, heads=4))  # head_dim 9: RoPE needs pairs


def test_sdpa_impl_is_unsupported_only_where_the_build_lacks_it():
    if HAS_SDPA:
        assert _build("attention_mha_tiny", attn_impl="sdpa").attn_impl == "sdpa"
    else:
        with pytest.raises(UnsupportedError, match="scaled_dot_product_attention"):
            AttentionLM(_config("attention_mha_tiny", attn_impl="sdpa"))
    assert _build("attention_mha_tiny").attn_impl == ("sdpa" if HAS_SDPA else "math")


def test_kv_head_counts_follow_the_variant():
    def kv_out(name):
        attn = models.create_model(name).blocks[0].attn
        return attn.k_proj.out_features // attn.head_dim

    assert (kv_out("attention_mha_tiny"), kv_out("attention_gqa_tiny"), kv_out("attention_mqa_tiny")) == (4, 2, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bool_additive_and_mixed_masks_give_the_same_logits(variant):
    tokens, _ = _padded_tokens()
    name = "attention_%s_tiny" % variant
    outs = {kind: _build(name, mask_kind=kind)(tokens) for kind in ("bool", "additive", "mixed")}
    assert_close(outs["additive"], outs["bool"], rtol=1e-5, atol=1e-5)
    assert_close(outs["mixed"], outs["bool"], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_SDPA, reason="no scaled_dot_product_attention in this torch")
@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
def test_sdpa_and_matmul_fallback_agree_with_a_non_default_scale(variant):
    tokens, _ = _padded_tokens()
    name = "attention_%s_tiny" % variant
    # 0.7 is not 1/sqrt(head_dim): a double or missing scale in either path shows up here.
    ref = _build(name, attn_impl="math", scale=0.7)(tokens)
    got = _build(name, attn_impl="sdpa", scale=0.7)(tokens)
    assert_close(got, ref, rtol=1e-4, atol=1e-5)
    default = _build(name, attn_impl="math")(tokens)
    assert (default - ref).abs().max().item() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_future_tokens_do_not_change_past_logits(variant):
    model = _build("attention_%s_tiny" % variant)
    tokens, _ = _padded_tokens()
    changed = tokens.clone()
    changed[:, 12:] = (changed[:, 12:] % 30) + 1
    assert_close(model(changed)[:, :12], model(tokens)[:, :12], rtol=1e-5, atol=1e-6)
    assert (model(changed)[:, 12:] - model(tokens)[:, 12:]).abs().max().item() > 1e-4


def test_sliding_window_sees_exactly_the_last_window_tokens():
    # One block: position i sees tokens i-window+1 .. i and nothing earlier.
    window = 5
    model = _build("attention_sliding_window_tiny", depth=1, window=window)
    tokens = _build("attention_mha_tiny").task_batch(1, 20, SeededGenerator(6))[0][0]
    base = model(tokens)
    changed = tokens.clone()
    changed[0, 3] = changed[0, 3] % 30 + 1
    diff = (model(changed) - base).abs().amax(dim=-1)[0]  # (t,)
    assert (diff[3:3 + window] > 1e-5).all()
    assert (diff[3 + window:] == 0).all() and (diff[:3] == 0).all()
    assert causal_mask(4, 4, None, window=2).sum(dim=1).tolist() == [1, 2, 2, 2]


def test_linear_attention_matches_the_quadratic_form():
    model = _build("attention_linear_tiny", depth=1)
    attn = model.blocks[0].attn
    x = SeededGenerator(7).normal((2, 19, 32))
    cos, sin = rope_tables(0, 19, attn.head_dim, 10000.0, None)
    keep_key = torch.ones(2, 19, dtype=torch.bool)
    keep_key[1, :3] = False
    got = attn(x, cos, sin, keep_key[:, None, :, None], None)  # 19 positions: chunks of 8, 8 and 3
    # Reference: phi(q) phi(k)^T under the causal x key mask, normalised per row.
    b, t, _ = x.shape
    h, d = attn.heads, attn.head_dim
    fq, fk, v = attn.features(x, cos, sin)
    weights = fq @ fk.transpose(-2, -1) * (causal_mask(t, t, None) & keep_key[:, None, None, :])
    out = (weights @ v) / weights.sum(dim=-1, keepdim=True).clamp_min(attn.eps)
    ref = attn.out_proj(out.transpose(1, 2).reshape(b, t, h * d))
    assert_close(got, ref, rtol=1e-4, atol=1e-5)


def _per_position_state_linear_attention(q, k, v, eps):
    # The form the chunked one replaced: a (d, d) running state per position, (b, h, t, d, d).
    kv = torch.einsum("bhtd,bhte->bhtde", k, v).cumsum(dim=2)
    num = torch.einsum("bhtd,bhtde->bhte", q, kv)
    den = (q * k.cumsum(dim=2)).sum(dim=-1, keepdim=True)
    return num / den.clamp_min(eps)


@pytest.mark.parametrize("t,chunk", [(1, 4), (7, 8), (8, 8), (29, 8), (29, 5), (64, 16), (33, 1)])
def test_chunked_linear_attention_equals_per_position_states_in_float64(t, chunk):
    gen = SeededGenerator(t * 100 + chunk)
    q, k = (torch.nn.functional.elu(gen.normal((2, 3, t, 6)).double()) + 1 for _ in range(2))
    v = gen.normal((2, 3, t, 5)).double()
    k[1, :, : t // 3] = 0.0  # padded keys, as a boolean key mask leaves them
    k[0] = k[0] * torch.exp(-gen.normal((1, t, 1)).double().abs())  # an additive key mask's weighting
    got = causal_linear_attention(q, k, v, chunk, 1e-4)
    assert got.shape == (2, 3, t, 5)
    assert_close(got, _per_position_state_linear_attention(q, k, v, 1e-4), rtol=1e-12, atol=1e-12)


def test_chunked_linear_attention_keeps_float16_normaliser_in_range():
    # 64-dim features over 1024 positions: sum_j q_i . k_j reaches ~8e4, past float16's 65504.
    # The per-position form returned num / inf = 0 there; the counts-normalised sums do not.
    gen = SeededGenerator(11)
    q = torch.nn.functional.elu(gen.normal((1, 1, 1024, 64)).double() * 0.3) + 1
    k = torch.nn.functional.elu(gen.normal((1, 1, 1024, 64)).double()) + 1
    v = gen.normal((1, 1, 1024, 64)).double()
    ref = causal_linear_attention(q, k, v, 64, 1e-4)
    try:
        got = causal_linear_attention(q.half(), k.half(), v.half(), 64, 1e-4)
    except RuntimeError as exc:  # 1.10 has no float16 matmul on the CPU
        pytest.skip("this build cannot run float16 matmuls on the CPU: %s" % str(exc).split("\n")[0])
    assert torch.isfinite(got).all()
    assert (got.double() - ref).abs().max().item() < 1e-2 < ref[..., -64:, :].abs().max().item()


@pytest.mark.parametrize("kind", ["bool", "additive", "mixed"])
def test_linear_lm_with_key_padding_equals_per_position_states_in_float64(kind, monkeypatch):
    tokens, _ = _padded_tokens(size=29)
    model = _build("attention_linear_tiny", mask_kind=kind).double()
    got = model(tokens)
    monkeypatch.setattr(models.attention, "causal_linear_attention",
                        lambda q, k, v, chunk, eps: _per_position_state_linear_attention(q, k, v, eps))
    assert_close(got, model(tokens), rtol=1e-10, atol=1e-10)


# --- the blocked sliding window -------------------------------------------------------

@pytest.mark.parametrize("t,window", [(20, 5), (37, 8), (16, 16), (10, 16), (33, 1), (40, 4), (64, 16)])
@pytest.mark.parametrize("kind", ["bool", "additive", "mixed"])
@pytest.mark.parametrize("padding", [True, False])
def test_blocked_sliding_window_equals_the_banded_full_matrix_in_float64(t, window, kind, padding):
    model = _build("attention_sliding_window_tiny", depth=1, window=window, mask_kind=kind, padding=padding).double()
    attn = model.blocks[0].attn
    tokens = SeededGenerator(t).integers(1, 32, (3, t))
    if padding:
        tokens[1, : t // 3] = PAD_ID
    x = SeededGenerator(t + 1).normal((3, t, 32)).double()
    cos, sin = rope_tables(0, t, attn.head_dim, 10000.0, None, torch.float64)
    got = attn(x, cos, sin, *model.build_masks(tokens, x.dtype))
    # The old formulation: one (t, t) banded causal mask (and key padding) over the full matrix.
    keep = causal_mask(t, t, None, window)[None, None]
    if padding:
        keep = keep & ((tokens != PAD_ID)[:, None, None, :] | torch.eye(t, dtype=torch.bool))
    attn.window = None
    ref = attn(x, cos, sin, keep, None)
    assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_sliding_window_masks_are_blocked_not_t_by_t():
    # 64 tokens in windows of 8: 8 blocks of 8 queries over 16 keys, never a 64 x 64 matrix.
    model = _build("attention_sliding_window_tiny", window=8)
    (tokens,), _ = model.example_inputs(2, 64, SeededGenerator(0))
    for kind in ("bool", "additive", "mixed"):
        masks = [m for m in _build("attention_sliding_window_tiny", window=8, mask_kind=kind).build_masks(
            tokens, torch.float32) if m is not None]
        assert masks and all(m.shape == (2 * 8, 1, 8, 16) for m in masks)


# --- the unpadded is_causal twins ------------------------------------------------------

@pytest.mark.parametrize("variant", CAUSAL_VARIANTS)
def test_causal_twin_passes_no_mask_and_equals_the_masked_model(variant, monkeypatch):
    name = "attention_%s_causal_tiny" % variant
    model = _build(name)
    (tokens,), target = model.example_inputs(2, 32, SeededGenerator(0))
    assert (tokens != PAD_ID).all() and (target[:, :-1] != IGNORE_INDEX).all()
    assert model.build_masks(tokens, torch.float32) == (None, None)
    calls = []
    real_attend = models.attention.attend

    def spy(q, k, v, mask=None, *args, **kwargs):
        calls.append((mask, kwargs.get("is_causal")))
        return real_attend(q, k, v, mask, *args, **kwargs)

    monkeypatch.setattr(models.attention, "attend", spy)
    got = model(tokens)
    assert calls and all(mask is None and causal for mask, causal in calls)
    for kind in ("bool", "additive", "mixed"):  # same weights, padded config, masks passed
        assert_close(got, _build("attention_%s_tiny" % variant, mask_kind=kind)(tokens), rtol=1e-5, atol=1e-5)
    assert_close(got, _build(name, attn_impl="math")(tokens), rtol=1e-4, atol=1e-5)


def test_unpadded_linear_and_sliding_window_take_no_padding_masks():
    tokens = _build("attention_mha_causal_tiny").example_inputs(2, 32, SeededGenerator(0))[0][0]
    assert _build("attention_linear_tiny", padding=False).build_masks(tokens, torch.float32) == (None, None)
    band, additive = _build("attention_sliding_window_tiny", padding=False).build_masks(tokens, torch.float32)
    assert additive is None and band.shape == (2 * 2, 1, 16, 32)
    for variant in ("linear", "sliding_window"):
        assert_close(_build("attention_%s_tiny" % variant, padding=False)(tokens),
                     _build("attention_%s_tiny" % variant)(tokens), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="padding"):
        AttentionLM(_config(FAULT, padding=False))


def test_second_copy_accuracy_scores_only_the_predictable_positions():
    model = _build("attention_mha_tiny")
    (tokens,), target = model.task_batch(3, 21, SeededGenerator(8))
    half = 10
    assert torch.equal(tokens[:, 1:1 + half], tokens[:, 1 + half:])  # filler token, then two copies
    oracle = torch.nn.functional.one_hot(target.clamp_min(0), model.config.vocab_size).float()
    assert second_copy_accuracy(oracle, target) == 1.0
    wrong = oracle.clone()
    wrong[:, :11] = oracle[:, :11].roll(1, dims=-1)  # first copy wrong: not scored
    assert second_copy_accuracy(wrong, target) == 1.0
    wrong[:, 11:] = oracle[:, 11:].roll(1, dims=-1)
    assert second_copy_accuracy(wrong, target) == 0.0


def test_short_training_learns_the_induction_task(train_on_task):
    before, after = train_on_task(_build("attention_mha_tiny"), steps=220, lr=1e-2, batch_size=8, size=20,
                                  eval_batch_size=64)
    assert before < 0.15, before  # chance is 1/31
    assert after > 0.5, after  # the induction phase change happens around step 170


# --- the mask-dtype fault twin -------------------------------------------------------

def test_fault_twin_equals_healthy_gqa_in_float32():
    # The bug is invisible in fp32: same weights, same logits, healthy and faulty.
    tokens, _ = _padded_tokens()
    assert_close(_build(FAULT)(tokens), _build("attention_gqa_tiny")(tokens), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "math"])
def test_healthy_gqa_runs_in_bf16_within_tolerance_of_fp32(impl):
    tokens, _ = _padded_tokens()
    with torch.no_grad():
        ref = _build("attention_gqa_tiny", attn_impl=impl)(tokens)
        got = _build("attention_gqa_tiny", attn_impl=impl).to(torch.bfloat16)(tokens)
        with autocast("cpu", "amp_bf16"):
            amp = _build("attention_gqa_tiny", attn_impl=impl)(tokens)
    assert got.dtype == torch.bfloat16
    assert (got.float() - ref).abs().max().item() < BF16_ATOL
    assert (amp.float() - ref).abs().max().item() < BF16_ATOL


def _cpu_ops_failure(dtype):
    """Feature detection: None if this build has the model's ops in ``dtype`` on the CPU, else why not.

    The ops of the healthy model's math path, on tiny tensors: embedding, LayerNorm, matmul,
    a masked softmax. torch 1.10, for one, has no fp16 LayerNorm on the CPU.
    """
    try:
        w = torch.ones(4, 4, dtype=dtype)
        x = torch.nn.functional.layer_norm(torch.nn.functional.embedding(torch.tensor([[0, 1, 2]]), w), (4,))
        scores = (x @ w @ x.transpose(-2, -1)).masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
        torch.softmax(scores, dim=-1) @ x
        return None
    except RuntimeError as exc:
        return "%s: %s" % (type(exc).__name__, str(exc).split("\n")[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fault_twin_fails_with_a_dtype_error_in_pure_low_precision(dtype):
    cannot = _cpu_ops_failure(dtype)
    if cannot is not None:
        pytest.skip("this build cannot run %s on the CPU: %s" % (dtype, cannot))
    tokens, _ = _padded_tokens()
    healthy = _build("attention_gqa_tiny", attn_impl="math").to(dtype)
    with torch.no_grad():  # the build has the ops: the healthy model must run, and close to fp32
        got = healthy(tokens)
        ref = _build("attention_gqa_tiny", attn_impl="math")(tokens)
    assert got.dtype == dtype and torch.isfinite(got).all()
    assert (got.float() - ref).abs().max().item() < BF16_ATOL
    faulty = _build(FAULT).to(dtype)
    # Scores + float32 mask are promoted to float32; probs @ values then mixes dtypes.
    with pytest.raises(RuntimeError, match="(?i)dtype|scalar type"):
        with torch.no_grad():
            faulty(tokens)


def test_fault_twin_is_hidden_by_cpu_autocast():
    # Documented behaviour, not a pass: autocast re-casts the matmul inputs, so the float32
    # mask runs silently; the harness sees the fault only in the pure bf16/fp16 cases.
    tokens, _ = _padded_tokens()
    with torch.no_grad():
        ref = _build(FAULT)(tokens)
        with autocast("cpu", "amp_bf16"):
            faulty = _build(FAULT)(tokens)
            mask = _build(FAULT).build_masks(tokens, torch.bfloat16)[1]
    assert mask.dtype == torch.float32  # built in float32 whatever the activations' dtype
    assert (faulty.float() - ref).abs().max().item() < BF16_ATOL
