"""float16 and bfloat16 (API revision 4): numpy float16 and torch bfloat16 in, results within the
contract's bound of a float64 reference computed from the inputs as rounded to the half dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import torch_ce

U = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


def bound(kind: str, classes: int, reference: np.ndarray) -> float:
    """max |error| the contract allows: (float32 bound + u) · max(1, max |float64 result|)."""
    f32 = max(1e-5, 0.1 * classes * 2.0 ** -24)
    return (f32 + U[kind]) * max(1.0, float(np.abs(reference).max()))


def logits(shape=(8, 10), seed=0):
    return np.random.default_rng(seed).normal(0, 3, shape)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_float16_backward(gs, reduction):
    z = logits().astype(np.float16)
    y = np.arange(8) % 10
    w = np.linspace(0.5, 2, 10)
    r = gs.backward(z, labels=y, weights=w, reduction=reduction, return_probs=True)
    loss, grad = torch_ce(z.astype(np.float64), labels=y, weights=w, reduction=reduction)
    assert r.grad_logits.dtype == np.float16 and r.probs.dtype == np.float16
    assert np.abs(r.grad_logits - grad).max() <= bound("float16", 10, grad)
    assert np.abs(r.loss.astype(np.float64) - loss).max() <= bound("float16", 10, loss)


def test_bfloat16_torch_tensor(gs):
    zt = torch.tensor(logits(seed=1)).to(torch.bfloat16).requires_grad_()
    y = torch.arange(8) % 10
    r = gs.backward(zt, labels=y, reduction="sum")
    z64 = zt.detach().double().numpy()
    loss, grad = torch_ce(z64, labels=y.numpy(), reduction="sum")
    # float32 out (numpy has no bfloat16), holding bfloat16 values exactly.
    assert r.grad_logits.dtype == np.float32
    assert not (r.grad_logits.view(np.uint32) & 0xFFFF).any()
    assert np.abs(r.grad_logits - grad).max() <= bound("bfloat16", 10, grad)
    assert abs(float(r.loss) - float(loss)) <= bound("bfloat16", 10, loss)


def test_bfloat16_probability_targets_and_forward(gs):
    zt = torch.tensor(logits(seed=2)).to(torch.bfloat16)
    p = torch.softmax(torch.tensor(logits(seed=3)), -1).to(torch.bfloat16)
    p = p / p.sum(-1, keepdim=True)
    f = gs.forward(zt, target_probs=p, log_probs=True)
    ref = torch.log_softmax(zt.double(), -1).numpy()
    assert f.log_probs.dtype == np.float32
    assert np.abs(f.log_probs - ref).max() <= bound("bfloat16", 10, ref)


def test_float16_verify_widens_to_float64(gs):
    z = logits((3, 5), seed=4).astype(np.float16)
    y = np.array([0, 4, 2])
    _, grad = torch_ce(z.astype(np.float64), labels=y)
    v = gs.verify(z, labels=y, candidate=grad)
    assert v.ok and v.candidate_ok and v.analytic_grad.dtype == np.float64
    np.testing.assert_allclose(v.analytic_grad, grad, rtol=1e-12, atol=1e-15)


def test_float16_chunked_equals_one_call(gs, small_gs):
    rows, classes = 3 * (1 << 20) // (100 * 2), 100  # 3 MiB of float16 logits, 1 MiB limit
    rng = np.random.default_rng(5)
    z = rng.normal(size=(rows, classes)).astype(np.float16)
    y = rng.integers(0, classes, rows)
    chunked = small_gs.backward(z, labels=y, ignore_index=7, label_smoothing=0.1)
    one = gs.backward(z, labels=y, ignore_index=7, label_smoothing=0.1)
    assert chunked.grad_logits.dtype == np.float16
    assert chunked.reduction_denominator == one.reduction_denominator
    # Equal up to float16 rounding (a server may round each chunk's grad_loss to float16).
    np.testing.assert_allclose(chunked.grad_logits, one.grad_logits, rtol=2.0 ** -9, atol=1e-7)
    np.testing.assert_allclose(chunked.loss, one.loss, rtol=2.0 ** -10)
