"""gs.backward and gs.forward against torch.nn.functional.cross_entropy + autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tolerance, torch_ce

OPTIONS = {
    "plain": {},
    "weights": {"weights": [0.5, 2.0, 1.0, 0.0, 3.0]},
    "smoothing": {"label_smoothing": 0.2},
    "ignore": {"ignore_index": 2},
    "all": {"weights": [0.5, 2.0, 1.0, 0.25, 3.0], "label_smoothing": 0.1, "ignore_index": 1},
}


def case(dtype, rows=6, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (rows, classes)).astype(dtype)
    y = rng.integers(0, classes, rows)
    p = rng.random((rows, classes))
    return z, y, (p / p.sum(1, keepdims=True)).astype(dtype)


def expected_denominator(y, weights=None, ignore_index=None, **_):
    keep = np.ones(len(y), bool) if ignore_index is None else y != ignore_index
    return float(keep.sum() if weights is None else np.asarray(weights)[y[keep]].sum())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("method", ["fused", "chain-rule"])
def test_class_indices_match_torch(gs, dtype, reduction, option, method):
    z, y, _ = case(dtype)
    opts = OPTIONS[option]
    r = gs.backward(z, labels=y, reduction=reduction, method=method, **opts)
    loss, grad = torch_ce(z, labels=y, reduction=reduction, **opts)
    assert r.grad_logits.dtype == dtype and r.grad_logits.shape == z.shape
    np.testing.assert_allclose(r.grad_logits, grad, **tolerance(dtype))
    np.testing.assert_allclose(r.loss, loss, **tolerance(dtype))
    assert r.reduction_denominator == (expected_denominator(y, **opts) if reduction == "mean" else 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_probability_targets_match_torch(gs, dtype, reduction, smoothing):
    z, _, p = case(dtype, seed=1)
    w = [1.0, 0.5, 2.0, 1.5, 1.0]
    r = gs.backward(z, target_probs=p, weights=w, label_smoothing=smoothing, reduction=reduction)
    loss, grad = torch_ce(z, target_probs=p, weights=w, label_smoothing=smoothing, reduction=reduction)
    np.testing.assert_allclose(r.grad_logits, grad, **tolerance(dtype))
    np.testing.assert_allclose(r.loss, loss, **tolerance(dtype))
    assert r.reduction_denominator == (len(z) if reduction == "mean" else 0)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_grad_loss_is_the_upstream_gradient(gs, reduction):
    z, y, _ = case(np.float64, seed=2)
    g = 2.5 if reduction == "mean" else np.linspace(-1, 2, len(y))
    r = gs.backward(z, labels=y, reduction=reduction, grad_loss=g)
    _, grad = torch_ce(z, labels=y, reduction=reduction, grad_loss=g)
    np.testing.assert_allclose(r.grad_logits, grad, rtol=1e-12, atol=1e-14)


def test_chain_rule_returns_grad_probs_probs_and_jacobian(gs):
    z, y, _ = case(np.float64, rows=3, seed=3)
    r = gs.backward(z, labels=y, reduction="sum", method="chain-rule", return_probs=True,
                    return_jacobian=True)
    zt = torch.tensor(z, requires_grad=True)
    a = torch.softmax(zt, -1)
    a.retain_grad()
    F.nll_loss(torch.log(a), torch.tensor(y), reduction="sum").backward()
    np.testing.assert_allclose(r.probs, a.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(r.grad_probs, a.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(r.grad_logits, zt.grad.numpy(), rtol=1e-10, atol=1e-14)
    for row in range(len(z)):
        jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, -1), torch.tensor(z[row]))
        np.testing.assert_allclose(r.jacobian[row], jac.numpy(), rtol=1e-12, atol=1e-15)


def test_grad_probs_is_the_softmax_vjp(gs):
    z, _, _ = case(np.float32, seed=4)
    g = np.random.default_rng(5).normal(size=z.shape).astype(np.float32)
    r = gs.backward(z, grad_probs=g)
    zt = torch.tensor(z, requires_grad=True)
    torch.softmax(zt, -1).backward(torch.tensor(g))
    np.testing.assert_allclose(r.grad_logits, zt.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert r.loss is None


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_batch_seq_vocab_shapes(gs, reduction):
    rng = np.random.default_rng(6)
    z = rng.normal(size=(2, 3, 7)).astype(np.float32)
    y = rng.integers(0, 7, (2, 3))
    r = gs.backward(z, labels=y, reduction=reduction, return_probs=True, return_jacobian=True)
    loss, grad = torch_ce(z, labels=y, reduction=reduction)
    assert r.grad_logits.shape == (2, 3, 7) and r.probs.shape == (2, 3, 7)
    assert r.jacobian.shape == (2, 3, 7, 7)
    assert r.loss.shape == ((2, 3) if reduction == "none" else ())
    np.testing.assert_allclose(r.grad_logits, grad.reshape(z.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.loss, loss.reshape(r.loss.shape), rtol=1e-5, atol=1e-6)
    f = gs.forward(z, labels=y, reduction=reduction, log_probs=True)
    np.testing.assert_allclose(f.log_probs, torch.log_softmax(torch.tensor(z), -1).numpy(), atol=1e-5)


def test_unbatched_logits_stay_rank_one(gs):
    r = gs.backward([2.0, 1.0, 0.1], labels=0, reduction="none")
    loss, grad = torch_ce(np.array([2.0, 1.0, 0.1]), labels=0, reduction="none")
    assert r.grad_logits.shape == (3,) and r.loss.shape == ()
    np.testing.assert_allclose(r.grad_logits, grad, rtol=1e-12)
    np.testing.assert_allclose(r.loss, loss, rtol=1e-12)


def test_torch_tensors_and_dtypes(gs):
    z = torch.randn(4, 5, requires_grad=True)  # float32, needs no .detach() from the caller
    y = torch.tensor([0, 4, 2, 1])
    r = gs.backward(z, labels=y)
    F.cross_entropy(z, y).backward()
    assert r.grad_logits.dtype == np.float32
    np.testing.assert_allclose(r.grad_logits, z.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert gs.backward(z.double(), labels=y).grad_logits.dtype == np.float64
    ints = gs.backward([[1, 2, 3]], labels=[2])  # other inputs become float64
    assert ints.grad_logits.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("targets", ["labels", "probs", "none"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_matches_torch(gs, dtype, targets, reduction):
    z, y, p = case(dtype, seed=7)
    kw = {"labels": y} if targets == "labels" else {"target_probs": p} if targets == "probs" else {}
    opts = dict(label_smoothing=0.1, reduction=reduction, weights=[1.0, 0.5, 2.0, 1.5, 1.0])
    if targets == "labels":
        opts["ignore_index"] = int(y[0])
    f = gs.forward(z, log_probs=True, **opts, **kw)
    zt = torch.tensor(z)
    np.testing.assert_allclose(f.probs, torch.softmax(zt, -1).numpy(), **tolerance(dtype))
    np.testing.assert_allclose(f.log_probs, torch.log_softmax(zt, -1).numpy(), **tolerance(dtype))
    assert f.probs.dtype == dtype
    if targets == "none":
        assert f.loss is None and f.reduction_denominator == 0
        return
    loss, _ = torch_ce(z, **opts, **kw)
    np.testing.assert_allclose(f.loss, loss, **tolerance(dtype))
    if reduction != "mean":
        assert f.reduction_denominator == 0
    elif targets == "probs":
        assert f.reduction_denominator == len(z)
    else:
        assert f.reduction_denominator == expected_denominator(y, **opts)


def test_empty_batch_follows_torch(gs):
    r = gs.backward(np.zeros((0, 4)), labels=[])
    assert r.grad_logits.shape == (0, 4) and np.isnan(r.loss)
    assert float(gs.backward(np.zeros((0, 4)), labels=[], reduction="sum").loss) == 0.0
