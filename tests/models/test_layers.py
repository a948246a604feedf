"""The shared blocks of the zoo (``models/_*.py``), tested once for all the models using them.

Runs on torch 1.10 (no SDPA: the explicit matmul-softmax) and on 2.x (SDPA): the
attention with its masks, scale, ``is_causal`` and fallback, the SDPA backend detection,
the head and window layouts, the blocked sliding-window layout, rotary embeddings, top-k
key attention, the Haar transform, the two LayerNorms and the two spectral tasks.
"""
import re

import numpy as np
import pytest
import torch

from models import SeededGenerator, UnsupportedError
from models._attention import (
    HAS_SDPA,
    SDPA_BACKENDS,
    SDPA_HAS_SCALE,
    apply_rope,
    attend,
    cast_additive,
    causal_mask,
    local_blocks,
    local_key_blocks,
    local_merge,
    local_query_blocks,
    local_window_mask,
    math_attention,
    merge_heads,
    merge_masks,
    resolve_attn_impl,
    rope_tables,
    sdpa_backends_available,
    split_heads,
    to_additive,
    topk_key_attention,
    window_merge,
    window_partition,
)
from models._base import at_least_float32
from models._layers import CastingLayerNorm, Float32LayerNorm, Mlp
from models._spectral import (
    SPECTRAL_BANDS,
    camera_response,
    make_spectral_batch,
    mrae,
    pooled_psnr_db,
    psnr_db,
    sensor_response,
    spectral_task_batch,
)
from models._wavelets import haar_dwt, haar_idwt

assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
needs_sdpa = pytest.mark.skipif(not HAS_SDPA, reason="no scaled_dot_product_attention in this torch")


def _reference_attention(q, k, v, scale, keep=None):
    scores = (q @ k.transpose(-2, -1)).double() * scale
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.double()).float()


# --- attention: feature detection ------------------------------------------------

def test_sdpa_features_are_detected_not_read_from_the_version():
    version = tuple(int(p) for p in re.match(r"(\d+)\.(\d+)", torch.__version__).groups())
    assert HAS_SDPA == hasattr(torch.nn.functional, "scaled_dot_product_attention")
    assert SDPA_HAS_SCALE == (version >= (2, 1))  # the detection agrees with the release notes
    assert resolve_attn_impl("auto") == ("sdpa" if HAS_SDPA else "math")
    assert resolve_attn_impl("math") == "math"
    with pytest.raises(ValueError, match="flash"):
        resolve_attn_impl("flash")
    if HAS_SDPA:
        assert resolve_attn_impl("sdpa") == "sdpa"
    else:
        with pytest.raises(UnsupportedError, match="scaled_dot_product_attention"):
            attend(*(torch.zeros(1, 1, 2, 4) for _ in range(3)), impl="sdpa")


# --- attention: scale and masks --------------------------------------------------

@pytest.mark.parametrize("impl", ["auto", "math"])
def test_default_scale_is_one_over_sqrt_head_dim_on_every_torch(impl):
    gen = SeededGenerator(4)
    q, k, v = (gen.normal((2, 3, 10, 8), std=2.0) for _ in range(3))
    ref = torch.softmax(q @ k.transpose(-2, -1) / np.sqrt(8), dim=-1) @ v
    assert_close(attend(q, k, v, impl=impl), ref, rtol=1e-4, atol=1e-5)
    assert_close(attend(q, k, v, None, 8 ** -0.5, impl), ref, rtol=1e-4, atol=1e-5)
    assert_close(attend(q, k, v, None, 0.7, impl), _reference_attention(q, k, v, 0.7), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("kind", ["bool", "additive", "mixed"])
def test_masked_keys_have_no_influence(impl, kind):
    if impl == "sdpa" and not HAS_SDPA:
        pytest.skip("no scaled_dot_product_attention in torch %s" % torch.__version__)
    gen = SeededGenerator(4)
    q, k, v = (gen.normal((2, 2, 6, 4)) for _ in range(3))
    keep_key = torch.tensor([[True] * 6, [False, False, True, True, True, True]])
    keep = causal_mask(6, 6, None) & keep_key[:, None, None, :]  # (2, 1, 6, 6)
    keep = keep | torch.eye(6, dtype=torch.bool)  # a query always sees itself
    masks = {"bool": (keep, None), "additive": (None, to_additive(keep, torch.float32)),
             "mixed": (causal_mask(6, 6, None), to_additive(keep_key[:, None, None, :] | torch.eye(6, dtype=torch.bool),
                                                           torch.float32))}[kind]
    mask = merge_masks(masks[0], masks[1], q.dtype)
    out = attend(q, k, v, mask, 0.5, impl)
    assert_close(out, _reference_attention(q, k, v, 0.5, keep), rtol=1e-4, atol=1e-5)
    v2 = v.clone()
    v2[1, :, :2] += 100.0  # values of padded keys
    v2[:, :, 5] += 100.0  # value of the last key: in every query's future but its own
    out2 = attend(q, k, v2, mask, 0.5, impl)
    assert_close(out2[0, :, :5], out[0, :, :5])
    assert_close(out2[1, :, 2:5], out[1, :, 2:5])


@needs_sdpa
@pytest.mark.parametrize("scale", [None, 0.7])
def test_sdpa_and_the_fallback_agree_with_masks_and_scales(scale):
    gen = SeededGenerator(5)
    q, k, v = (gen.normal((2, 3, 7, 8)) for _ in range(3))
    keep = causal_mask(7, 7, None, window=3)
    bias = gen.normal((2, 3, 7, 7))  # an additive bias, as the graph VAE passes
    for mask in (None, keep, bias):
        assert_close(attend(q, k, v, mask, scale, "sdpa"), math_attention(q, k, v, mask, scale),
                     rtol=1e-4, atol=1e-5)


def test_causal_mask_rows_are_the_last_queries_and_the_window_bands_them():
    keep = causal_mask(2, 5, None)
    assert keep.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    band = causal_mask(5, 5, None, window=2)
    assert band.sum(dim=-1).tolist() == [1, 2, 2, 2, 2] and band[4, 3] and not band[4, 2]


def test_cast_additive_keeps_the_mask_finite_in_half_precision():
    mask = to_additive(torch.tensor([True, False]), torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        cast = cast_additive(mask, dtype)
        assert cast.dtype == dtype and torch.isfinite(cast).all() and cast[0] == 0 and cast[1] < -1e4


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("t,s", [(7, 7), (3, 7), (1, 7), (1, 1)])
def test_is_causal_equals_the_explicit_bottom_right_causal_mask(impl, t, s):
    if impl == "sdpa" and not HAS_SDPA:
        pytest.skip("no scaled_dot_product_attention in torch %s" % torch.__version__)
    gen = SeededGenerator(6)
    q, k, v = gen.normal((2, 3, t, 8)), gen.normal((2, 3, s, 8)), gen.normal((2, 3, s, 8))
    # The t queries are the last t positions (a chunk after a KV-cache), as causal_mask has it.
    ref = _reference_attention(q, k, v, 0.7, causal_mask(t, s, None))
    assert_close(attend(q, k, v, None, 0.7, impl, is_causal=True), ref, rtol=1e-4, atol=1e-5)
    assert_close(attend(q, k, v, impl=impl, is_causal=True), _reference_attention(q, k, v, 8 ** -0.5,
                 causal_mask(t, s, None)), rtol=1e-4, atol=1e-5)


def test_is_causal_rejects_a_mask_and_more_queries_than_keys():
    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ValueError, match="is_causal"):
        attend(q, q, q, causal_mask(4, 4, None), is_causal=True)
    with pytest.raises(ValueError, match="4 queries, 2 keys"):
        attend(q, q[:, :, :2], q[:, :, :2], is_causal=True)


def test_sdpa_backends_are_detected_from_the_build():
    found = sdpa_backends_available()
    assert isinstance(found, tuple) and set(found) <= set(SDPA_BACKENDS)
    assert list(found) == [b for b in SDPA_BACKENDS if b in found]  # SDPA_BACKENDS' order
    if not HAS_SDPA:
        assert found == ()
        return
    assert "math" in found
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: F401
    except ImportError:
        assert {"flash", "efficient"} <= set(found)  # the flags of torch.backends.cuda.sdp_kernel
        return
    assert ("flash" in found) == hasattr(SDPBackend, "FLASH_ATTENTION")
    assert ("cudnn" in found) == hasattr(SDPBackend, "CUDNN_ATTENTION")


# --- attention: the blocked sliding window ------------------------------------------

def test_local_blocks_cover_the_sequence_in_windows():
    assert local_blocks(20, 8) == (8, 3, 16)
    assert local_blocks(16, 8) == (8, 2, 16)
    assert local_blocks(8, 8) == (8, 1, 8) and local_blocks(5, 8) == (5, 1, 5)  # one block: plain causal
    with pytest.raises(ValueError, match="window"):
        local_blocks(8, 0)


@pytest.mark.parametrize("t,window", [(20, 8), (16, 4), (5, 8), (9, 1)])
def test_local_blocks_hold_the_band_of_the_full_causal_window_mask(t, window):
    x = torch.arange(2 * t, dtype=torch.float64).reshape(2, 1, t, 1) + 1  # position + 1 (0: padding)
    block, n_blocks, span = local_blocks(t, window)
    qb, kb = local_query_blocks(x, window), local_key_blocks(x, window)
    assert qb.shape == (2 * n_blocks, 1, block, 1) and kb.shape == (2 * n_blocks, 1, span, 1)
    assert torch.equal(local_merge(qb, 2, t), x)
    # Every (query, key) pair the blocked mask keeps for a real query is one the banded (t, t)
    # mask keeps, never a padding key, and every pair that mask keeps appears exactly once.
    # (Padding queries, after the last position, are cut off by local_merge.)
    keep = local_window_mask(t, window, None).repeat(2, 1, 1, 1)  # (2 * nb, 1, block, span)
    queries, keys = qb.expand_as(keep)[keep].tolist(), kb.transpose(-2, -1).expand_as(keep)[keep].tolist()
    pairs = [(int(i) - 1, int(j) - 1) for i, j in zip(queries, keys) if i > 0]
    band = causal_mask(t, t, None, window)
    want = {(row * t + i, row * t + j) for row in range(2) for i, j in band.nonzero().tolist()}
    assert set(pairs) == want and len(pairs) == len(want)


# --- rotary position embeddings ---------------------------------------------------

def test_rope_tables_follow_the_requested_dtype_and_start():
    cos, sin = rope_tables(3, 4, 8, 10000.0, None)
    assert cos.dtype == torch.float32 and cos.shape == (4, 8)
    cos64, sin64 = rope_tables(0, 7, 8, 10000.0, None, torch.float64)
    assert cos64.dtype == torch.float64 and torch.allclose(cos64[3:].float(), cos) and torch.allclose(
        sin64[3:].float(), sin)
    x = SeededGenerator(2).normal((1, 2, 7, 8), dtype=torch.float64)
    assert apply_rope(x, cos64, sin64).dtype == torch.float64
    assert_close(apply_rope(x, cos64, sin64).norm(dim=-1), x.norm(dim=-1))


# --- attention: layouts and top-k -------------------------------------------------

def test_window_partition_round_trips():
    x = SeededGenerator(0).normal((2, 6, 8, 3))
    windows = window_partition(x, 3, 4)
    assert windows.shape == (2 * 2 * 2, 12, 3)
    assert torch.equal(windows[0].reshape(3, 4, 3), x[0, :3, :4])
    assert torch.equal(window_merge(windows, 2, 6, 8, 3, 4), x)
    # A channel slice (as CSWin's half-width q, k, v) partitions the same as a copy.
    wide = SeededGenerator(1).normal((2, 6, 8, 6))
    assert torch.equal(window_partition(wide[..., 3:], 2, 8), window_partition(wide[..., 3:].contiguous(), 2, 8))


def test_split_and_merge_heads_round_trip():
    t = SeededGenerator(0).normal((3, 5, 8))
    heads = split_heads(t, 2)
    assert heads.shape == (3, 2, 5, 4) and torch.equal(heads[:, 1], t[..., 4:])
    assert torch.equal(merge_heads(heads), t)


def test_topk_key_attention_attends_to_the_most_relevant_keys_only():
    gen = SeededGenerator(1)
    q, k, v = gen.normal((2, 2, 5, 4)), gen.normal((2, 2, 9, 4)), gen.normal((2, 2, 9, 4))
    dense = torch.softmax((q * 0.5) @ k.transpose(-2, -1), dim=-1) @ v
    assert torch.allclose(topk_key_attention(q, k, v, 9, 0.5), dense, atol=1e-6)
    # With keep=3: the same as dense attention over the 3 keys of highest mean score.
    relevance = (q.mean(dim=-2, keepdim=True) @ k.transpose(-2, -1)).squeeze(-2)  # (2, 2, 9)
    idx = relevance.topk(3, dim=-1).indices.unsqueeze(-1).expand(2, 2, 3, 4)
    ks, vs = k.gather(2, idx), v.gather(2, idx)
    expected = torch.softmax((q * 0.5) @ ks.transpose(-2, -1), dim=-1) @ vs
    assert torch.allclose(topk_key_attention(q, k, v, 3, 0.5), expected, atol=1e-6)
    # Masked keys never contribute, chosen or not.
    mask = torch.zeros(1, 1, 1, 9, dtype=torch.bool)
    mask[..., 4:] = True
    v_poisoned = v.clone()
    v_poisoned[..., 4:, :] = 1e6
    for keep in (3, 9):
        out = topk_key_attention(q, k, v_poisoned, keep, 0.5, mask)
        assert out.abs().max() < 1e3


# --- the Haar transform -----------------------------------------------------------

def test_haar_transform_is_orthonormal_and_inverted_exactly():
    x = SeededGenerator(0).normal((2, 3, 8, 12), dtype=torch.float64)
    y = haar_dwt(x)
    assert y.shape == (2, 12, 4, 6)
    assert torch.allclose(haar_idwt(y), x, atol=1e-12)
    assert torch.allclose((y ** 2).sum(), (x ** 2).sum())  # energy is preserved
    # A constant image has only an LL band, twice the value (orthonormal: 4 pixels * 0.5).
    const = haar_dwt(torch.full((1, 1, 4, 4), 3.0, dtype=torch.float64))
    assert torch.allclose(const[:, 0], torch.full((1, 2, 2), 6.0, dtype=torch.float64))
    assert const[:, 1:].abs().max().item() == 0.0


def test_haar_sub_bands_are_ll_lh_hl_hh():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)  # a b / c d
    assert haar_dwt(x).flatten().tolist() == [5.0, -1.0, -2.0, 0.0]
    for dtype in (torch.float16, torch.bfloat16):
        assert torch.equal(haar_idwt(haar_dwt(x.to(dtype))), x.to(dtype))


# --- the LayerNorms and the MLP ---------------------------------------------------

def test_both_layernorms_equal_layernorm_in_float32():
    x = SeededGenerator(0).normal((2, 5, 8))
    ref = torch.nn.LayerNorm(8)
    for cls in (CastingLayerNorm, Float32LayerNorm):
        norm = cls(8)
        norm.load_state_dict(ref.state_dict())
        assert torch.equal(norm(x), ref(x))


def test_casting_layernorm_returns_the_weight_dtype_and_float32_layernorm_the_input_dtype():
    x = SeededGenerator(0).normal((2, 5, 8), std=3.0)
    ref = torch.nn.functional.layer_norm(x, (8,))
    low = x.to(torch.bfloat16)  # a bf16 activation meets float32 weights, as under CPU autocast
    casting, f32 = CastingLayerNorm(8)(low), Float32LayerNorm(8)(low)
    assert casting.dtype == torch.float32 and f32.dtype == torch.bfloat16
    assert_close(f32.float(), ref, rtol=0.02, atol=0.02)
    # A pure bf16 model: Float32LayerNorm still takes its statistics in float32.
    norm = Float32LayerNorm(8).to(torch.bfloat16)
    assert torch.equal(norm(low), torch.nn.functional.layer_norm(low.float(), (8,)).to(torch.bfloat16))


def test_mlp_maps_channels_last_tokens_to_the_same_width():
    mlp = Mlp(8, 2.0)
    assert mlp.fc1.out_features == 16 and mlp(torch.zeros(2, 3, 4, 8)).shape == (2, 3, 4, 8)
    assert Mlp(3, 0.1).fc1.out_features == 1  # never an empty hidden layer


# --- the spectral tasks -----------------------------------------------------------

def test_mswr_task_is_a_smooth_cube_seen_through_the_sensor():
    resp = sensor_response()
    assert resp.shape == (3, SPECTRAL_BANDS) and (resp > 0).all() and np.allclose(resp.sum(axis=1), 1.0)
    rgb, cube = make_spectral_batch(SeededGenerator(4), 2, 16)
    assert rgb.shape == (2, 3, 16, 16) and cube.shape == (2, 31, 16, 16)
    assert cube.min().item() > 0.0 and cube.max().item() < 1.0
    expected = torch.einsum("cl,blhw->bchw", torch.from_numpy(resp).float(), cube)
    assert torch.allclose(rgb, expected, atol=1e-5)
    # Smooth along the spectrum and in space: neighbours differ far less than the range.
    # (White noise would give about 1.1 standard deviations.)
    assert (cube[:, 1:] - cube[:, :-1]).abs().mean() < 0.35 * cube.std()
    assert (cube[..., 1:, :] - cube[..., :-1, :]).abs().mean() < 0.35 * cube.std()
    again = make_spectral_batch(SeededGenerator(4), 2, 16)
    assert torch.equal(again[0], rgb) and torch.equal(again[1], cube)


def test_cswin_task_is_a_smooth_cube_seen_through_the_camera_response():
    rgb, cube = spectral_task_batch(2, 12, SeededGenerator(4))
    response = camera_response()
    assert response.shape == (3, SPECTRAL_BANDS) and np.allclose(response.sum(axis=1), 1.0)
    assert float(cube.min()) >= 0.0 and float(cube.max()) <= 1.0
    expected = torch.einsum("cl,blhw->bchw", torch.from_numpy(response).float(), cube)
    assert torch.allclose(rgb, expected, atol=1e-5)
    # Smooth along the spectrum: neighbouring bands differ far less than the values.
    assert float((cube[:, 1:] - cube[:, :-1]).abs().mean()) < 0.2 * float(cube.mean())
    rgb2, cube2 = spectral_task_batch(2, 12, SeededGenerator(4))
    assert torch.equal(rgb, rgb2) and torch.equal(cube, cube2)


def test_metrics():
    target = torch.full((2, 31, 4, 4), 0.5)
    assert mrae(target, target).item() == 0.0
    assert abs(mrae(target * 1.1, target).item() - 0.1) < 1e-3
    for psnr in (psnr_db, pooled_psnr_db):
        assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-4)
        assert psnr(target, target) > 100
    # psnr_db averages each image's PSNR; pooled_psnr_db takes one MSE over the batch.
    pred = target.clone()
    pred[0] += 0.1
    pred[1] += 0.01
    assert psnr_db(pred, target) == pytest.approx(30.0, abs=1e-3)
    assert pooled_psnr_db(pred, target) == pytest.approx(-10 * np.log10((0.01 + 0.0001) / 2), abs=1e-3)


def test_float32_layer_norm_widens_half_and_keeps_float64():
    # The float64 accuracy reference must stay float64 through the zoo's float32 islands.
    assert at_least_float32(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert at_least_float32(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    norm = Float32LayerNorm(8).double()
    x = torch.randn(4, 8, dtype=torch.float64) * 1e3 + 1.0
    exact = torch.nn.functional.layer_norm(x, (8,), norm.weight, norm.bias, norm.eps)
    assert norm(x).dtype == torch.float64 and torch.equal(norm(x), exact)
    half = Float32LayerNorm(8).to(torch.bfloat16)
    assert half(x.to(torch.bfloat16)).dtype == torch.bfloat16
