"""Big batches: row chunks under the message limit give what one call gives.

The chunked side talks to a server started with --max_message_mib=1 (and a Client told so), so a
batch 3.5x the limit moves about 3.5 MiB; the one-call side is the default server.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradserve
from gradserve import _ops

CLASSES = 100
ROWS = int(3.5 * (1 << 20)) // (CLASSES * 8)  # float64 logits 3.5x the 1 MiB limit


def batch(dtype=np.float64, rows=None, seed=0):
    rows = rows or int(3.5 * (1 << 20)) // (CLASSES * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (rows, CLASSES)).astype(dtype)
    y = rng.integers(0, CLASSES, rows)
    y[::7] = 3  # the ignored class
    weights = rng.uniform(0.1, 2.0, CLASSES)
    return z, y, weights


def chunks_of(call_args) -> int:
    return len(_ops.backward((1 << 20, 0), *call_args).chunks)


def test_one_call_is_refused_by_the_small_server(small_server):
    z, y, w = batch()
    with gradserve.Client(small_server.address, max_message_bytes=64 << 20) as one_call:
        with pytest.raises(gradserve.ResourceExhausted, match="max_message_mib"):
            one_call.backward(z, labels=y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_with_weights_ignore_and_smoothing(gs, small_gs, dtype):
    z, y, w = batch(dtype)
    opts = dict(labels=y, weights=w, ignore_index=3, label_smoothing=0.1, reduction="mean")
    assert chunks_of((z, y, None, None, w, 0.1, 3, "mean", "fused", None, False, False)) >= 4
    chunked, one = small_gs.backward(z, **opts), gs.backward(z, **opts)
    assert chunked.reduction_denominator == one.reduction_denominator
    assert chunked.grad_logits.dtype == dtype and chunked.loss.dtype == dtype
    if dtype == np.float64:
        np.testing.assert_allclose(chunked.grad_logits, one.grad_logits, rtol=1e-13, atol=1e-17)
        np.testing.assert_allclose(chunked.loss, one.loss, rtol=1e-12)
    else:
        np.testing.assert_allclose(chunked.grad_logits, one.grad_logits, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(chunked.loss, one.loss, rtol=1e-5)


def test_none_with_grad_loss_probs_and_chain_rule(gs, small_gs):
    z, y, w = batch(seed=1)
    g = np.linspace(-1, 1, len(y))
    opts = dict(labels=y, weights=w, reduction="none", grad_loss=g, method="chain-rule",
                return_probs=True)
    chunked, one = small_gs.backward(z, **opts), gs.backward(z, **opts)
    for name in ("grad_logits", "loss", "probs", "grad_probs"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(one, name), rtol=1e-13, atol=1e-17)


def test_probability_targets_mean(gs, small_gs):
    z, _, _ = batch(seed=2, rows=ROWS // 2)
    p = np.random.default_rng(3).random(z.shape)
    p /= p.sum(1, keepdims=True)
    chunked = small_gs.backward(z, target_probs=p, grad_loss=3.0)
    one = gs.backward(z, target_probs=p, grad_loss=3.0)
    assert chunked.reduction_denominator == one.reduction_denominator == len(z)
    np.testing.assert_allclose(chunked.grad_logits, one.grad_logits, rtol=1e-13, atol=1e-17)
    np.testing.assert_allclose(chunked.loss, one.loss, rtol=1e-12)


@pytest.mark.parametrize("case", ["every_row_ignored", "zero_weight_sum"])
def test_torch_nan_cases(gs, small_gs, case):
    z, y, w = batch(seed=4)
    if case == "every_row_ignored":
        opts = dict(labels=np.full(len(y), 3), ignore_index=3)
    else:
        w = np.zeros(CLASSES)
        y[::2] = 5
        opts = dict(labels=y, weights=w, ignore_index=5)  # ignored rows stay zero
    chunked, one = small_gs.backward(z, **opts), gs.backward(z, **opts)
    assert np.isnan(chunked.loss) and np.isnan(one.loss)
    np.testing.assert_array_equal(np.isnan(chunked.grad_logits), np.isnan(one.grad_logits))
    np.testing.assert_array_equal(np.nan_to_num(chunked.grad_logits), np.nan_to_num(one.grad_logits))
    if case == "every_row_ignored":
        assert not chunked.grad_logits.any()
    else:
        kept = opts["labels"] != 5
        assert np.isnan(chunked.grad_logits[kept]).all() and not chunked.grad_logits[~kept].any()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_chunked(gs, small_gs, reduction):
    z, y, w = batch(seed=5)
    opts = dict(labels=y, weights=w, ignore_index=3, reduction=reduction, log_probs=True)
    chunked, one = small_gs.forward(z, **opts), gs.forward(z, **opts)
    np.testing.assert_allclose(chunked.probs, one.probs, rtol=1e-14)
    np.testing.assert_allclose(chunked.log_probs, one.log_probs, rtol=1e-14)
    np.testing.assert_allclose(chunked.loss, one.loss, rtol=1e-12)
    assert chunked.reduction_denominator == one.reduction_denominator


def test_batch_seq_vocab_chunked(gs, small_gs):
    z, y, _ = batch(seed=6, rows=60 * 80)
    z, y = z.reshape(60, 80, CLASSES), y.reshape(60, 80)
    chunked, one = small_gs.backward(z, labels=y), gs.backward(z, labels=y)
    assert chunked.grad_logits.shape == z.shape
    np.testing.assert_allclose(chunked.grad_logits, one.grad_logits, rtol=1e-13, atol=1e-17)


def test_chunk_failure_names_the_rows(small_gs):
    z, y, _ = batch(seed=7)
    y[-1] = CLASSES  # out of range, in the last chunk
    with pytest.raises(gradserve.InvalidArgument, match=r"chunk \d+ of \d+: rows \d+\.\.\d+"):
        small_gs.backward(z, labels=y)


@pytest.mark.parametrize("pipeline_bytes", [None, 0])
def test_16_mib_response_with_default_settings(server, pipeline_bytes):
    """Default settings (pipelined chunks), and one call whose response is 16 MiB."""
    rng = np.random.default_rng(8)
    z = rng.normal(size=(4096, 1024)).astype(np.float32)  # 16 MiB of gradient back
    y = rng.integers(0, 1024, 4096)
    kw = {} if pipeline_bytes is None else {"pipeline_bytes": pipeline_bytes}
    with gradserve.Client(server.address, **kw) as plain:
        limits = (plain.max_message_bytes, plain.pipeline_bytes)
        chunks = len(_ops.backward(limits, z, y, None, None, None, 0.0, None, "mean", "fused",
                                   None, False, False).chunks)
        assert (chunks > 1) == (pipeline_bytes is None)
        r = plain.backward(z, labels=y)
    a = np.exp(z - z.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    a[np.arange(4096), y] -= 1
    np.testing.assert_allclose(r.grad_logits, a / 4096, rtol=1e-4, atol=1e-9)
