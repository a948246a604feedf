"""Model-specific tests of the decoder LM (models/llm_decoder.py, seed 003).

The KV-cache is the point: cached greedy decoding must give the logits an uncached
forward gives on the same extended sequence, the cache must hold unexpanded GQA heads,
and RoPE must make attention depend on relative positions only. The ``nocache`` twin
decodes by re-running the whole sequence and must give the same logits. Also the
prompt + decode_steps <= max_seq_len rule (8192-token prompts for ``_base``), that no
call passes a mask tensor (``is_causal``), bf16/autocast closeness, and that a short
training run learns the induction task.
"""
import dataclasses

import pytest
import torch

import models
from harness.runner.precision import autocast
from models import SeededGenerator, init_parameters
from models._attention import HAS_SDPA
from models._tokens import IGNORE_INDEX
from models.llm_decoder import LLMDecoder, apply_rope, rope_tables

assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
NAME = "llm_decoder_tiny"


def _build(seed=0, **changes):
    config = dataclasses.replace(models.get_spec(NAME).config, **changes)
    model = LLMDecoder(config)
    init_parameters(model, seed)
    return model.eval()


def _tokens(batch=2, size=12, seed=0):
    return _build().example_inputs(batch, size, SeededGenerator(seed))[0][0]


def test_registered_tiny_and_base():
    names = set(models.list_models("llm_decoder_*"))
    assert {NAME, "llm_decoder_base", "llm_decoder_nocache_tiny", "llm_decoder_nocache_base"} <= names
    base = models.get_spec("llm_decoder_base").config
    assert base.heads > base.kv_heads > 1  # GQA
    assert max(base.default_sizes) + base.decode_steps <= base.max_seq_len
    for name in ("llm_decoder_base", "llm_decoder_nocache_base"):
        assert models.get_spec(name).size_error(8192) is None  # the audit's longest prompt, plus decoding
    assert base.use_cache and not models.get_spec("llm_decoder_nocache_base").config.use_cache
    nocache = models.get_spec("llm_decoder_nocache_base").config
    assert dataclasses.replace(nocache, use_cache=True) == base  # the same model, decoding differently


def test_decoding_without_the_cache_gives_the_cached_logits():
    tokens = _tokens(size=11)
    with torch.no_grad():
        cached = _build().infer(tokens)
        uncached = _build(use_cache=False).infer(tokens)
        trained = _build(use_cache=False)(tokens)
    assert uncached.shape == cached.shape == (2, 11 + 4, 32)
    assert_close(uncached, cached, rtol=1e-4, atol=1e-5)
    assert_close(uncached[:, :11], trained)  # the prefill is the training forward


def test_no_call_passes_a_mask_tensor(monkeypatch):
    import models.llm_decoder as llm

    calls = []
    real_attend = llm.attend

    def spy(q, k, v, mask=None, *args, **kwargs):
        calls.append((q.shape[-2], k.shape[-2], mask, kwargs.get("is_causal")))
        return real_attend(q, k, v, mask, *args, **kwargs)

    monkeypatch.setattr(llm, "attend", spy)
    model = _build()
    tokens = _tokens(size=9)
    with torch.no_grad():
        model(tokens)
        model.infer(tokens)
        _, cache = model.step(tokens[:, :5])
        model.step(tokens[:, 5:], cache)  # a chunk after a cache: attend builds the offset mask
    assert calls and all(mask is None and causal for _, _, mask, causal in calls)
    assert {(q, k) for q, k, _, _ in calls} >= {(9, 9), (1, 10), (4, 9)}


def test_float64_runs_rope_in_float64():
    tokens = _tokens(size=9)
    model = _build().double()
    with torch.no_grad():
        got = model(tokens)
    assert got.dtype == torch.float64
    assert_close(got.float(), _build()(tokens), rtol=1e-4, atol=1e-5)


def test_forward_and_infer_shapes_and_targets():
    model = _build()
    (tokens,), target = model.example_inputs(2, 13, SeededGenerator(0))
    assert torch.equal(target[:, :-1], tokens[:, 1:]) and (target[:, -1] == IGNORE_INDEX).all()
    with torch.no_grad():
        logits = model(tokens)
        out = model.infer(tokens)
    steps = model.config.decode_steps
    assert logits.shape == (2, 13, 32) and out.shape == (2, 13 + steps, 32)
    # The prefill is the training forward; the loss ignores the decoded positions.
    assert_close(out[:, :13], logits, rtol=1e-5, atol=1e-5)
    assert_close(model.loss(out, target), model.loss(logits, target))


def test_cached_decoding_equals_uncached_forward_on_the_extended_sequence():
    model = _build()
    tokens = _tokens(size=11)
    steps = model.config.decode_steps
    with torch.no_grad():
        out = model.infer(tokens)
        # Rebuild the greedy continuation and run it through the plain causal forward.
        decoded = out[:, 10:10 + steps].argmax(dim=-1)  # token fed at each decode step
        full = model(torch.cat([tokens, decoded], dim=1))  # (b, 11 + steps, vocab)
    assert_close(out, full, rtol=1e-4, atol=1e-5)


def test_greedy_infer_is_deterministic():
    model = _build()
    tokens = _tokens()
    with torch.no_grad():
        assert torch.equal(model.infer(tokens), model.infer(tokens))


def test_cache_holds_unexpanded_kv_heads_after_each_step():
    model = _build()
    tokens = _tokens(size=7)
    with torch.no_grad():
        _, cache = model.step(tokens)
        _, cache = model.step(tokens[:, :1], cache)
    c = model.config
    assert len(cache) == c.depth
    for k, v in cache:
        assert k.shape == v.shape == (2, c.kv_heads, 8, c.dim // c.heads)


def test_chunked_prefill_with_cache_matches_one_pass():
    # A multi-token step after a cache needs the offset causal mask and RoPE offsets.
    model = _build()
    tokens = _tokens(size=10)
    with torch.no_grad():
        whole, _ = model.step(tokens)
        first, cache = model.step(tokens[:, :6])
        second, _ = model.step(tokens[:, 6:], cache)
    assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-4, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    gen = SeededGenerator(3)
    q, k = gen.normal((1, 1, 1, 8)), gen.normal((1, 1, 1, 8))

    def score(m, n):
        cos_m, sin_m = rope_tables(m, 1, 8, 10000.0, None)
        cos_n, sin_n = rope_tables(n, 1, 8, 10000.0, None)
        return (apply_rope(q, cos_m, sin_m) * apply_rope(k, cos_n, sin_n)).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    # Rotation keeps norms.
    cos, sin = rope_tables(7, 1, 8, 10000.0, None)
    assert apply_rope(q, cos, sin).norm().item() == pytest.approx(q.norm().item(), rel=1e-5)


def test_prompt_plus_decode_steps_must_fit_max_seq_len():
    spec = models.get_spec(NAME)
    c = spec.config
    limit = c.max_seq_len - c.decode_steps
    assert spec.size_error(limit) is None
    reason = spec.size_error(limit + 1)
    assert reason is not None and str(limit + 1) in reason and str(c.max_seq_len) in reason
    assert str(3) in spec.size_error(3)
    model = _build()
    with pytest.raises(ValueError):
        model.example_inputs(1, limit + 1, SeededGenerator(0))
    too_long = torch.ones(1, limit + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="decode steps"):
        model.infer(too_long)
    model(too_long)  # training sees no decode steps: still fits
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.ones(1, c.max_seq_len + 1, dtype=torch.long))


def test_invalid_configs_raise_valueerror():
    with pytest.raises(ValueError, match="kv_heads=3"):
        _build(kv_heads=3)
    with pytest.raises(ValueError, match="even"):
        _build(dim=36, heads=4)  # head_dim 9: RoPE needs pairs


@pytest.mark.skipif(not HAS_SDPA, reason="no scaled_dot_product_attention in this torch")
def test_sdpa_and_matmul_fallback_agree_through_prefill_and_decode():
    tokens = _tokens()
    with torch.no_grad():
        ref = _build(attn_impl="math").infer(tokens)
        got = _build(attn_impl="sdpa").infer(tokens)
    assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_bf16_and_autocast_stay_close_to_fp32():
    tokens = _tokens()
    with torch.no_grad():
        ref = _build()(tokens)
        pure = _build().to(torch.bfloat16)(tokens)
        with autocast("cpu", "amp_bf16"):
            amp = _build()(tokens)
            decoded = _build().infer(tokens)
    assert pure.dtype == torch.bfloat16
    assert (pure.float() - ref).abs().max().item() < 0.1
    assert (amp.float() - ref).abs().max().item() < 0.1
    assert torch.isfinite(decoded.float()).all()


def test_short_training_learns_the_induction_task():
    torch.manual_seed(0)
    model = _build().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen, size = SeededGenerator(1), 24
    (ev_tokens,), ev_target = model.task_batch(64, size, SeededGenerator(99))

    def accuracy():
        model.eval()
        with torch.no_grad():
            acc = model.task_metric(model.infer(ev_tokens), ev_target)
        model.train()
        return acc

    before = accuracy()
    for _ in range(180):
        (tokens,), target = model.task_batch(12, size, gen)
        loss = model.loss(model(tokens), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = accuracy()
    assert before < 0.15, before  # chance is 1/32
    assert after > 0.5, after  # the induction phase change happens around step 140
