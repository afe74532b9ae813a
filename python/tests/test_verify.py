"""gs.verify: the seed case, right and wrong candidates, Jacobians, and the docstrings' examples."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import gradserve
from conftest import torch_ce


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_seed_case_is_jacobian_at_logits(gs, reduction):
    v = gs.verify([1.75, 1.75], target_probs=[0, 1], candidate=[6.125, 2.625], reduction=reduction)
    assert not v.ok and not v.candidate_ok
    f = v.findings[0]
    assert f.code == "JACOBIAN_AT_LOGITS"
    assert "(0.5, -0.5)" in f.message and "a - t" in f.message
    np.testing.assert_allclose(f.mistaken_grad, [6.125, 2.625])
    assert f.residual == 0
    np.testing.assert_allclose(v.analytic_grad, [0.5, -0.5])
    np.testing.assert_allclose(v.numeric_grad, [0.5, -0.5], atol=1e-14)
    assert v.worst == (0,)  # rank-1 logits: the class
    assert v.summary.startswith("Gradient NOT verified")


def test_worst_indexes_batched_logits(gs):
    z = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 4.0]])
    y = np.array([2, 0])
    _, grad = torch_ce(z, labels=y)
    wrong = grad.copy()
    wrong[1, 2] += 0.3
    v = gs.verify(z, labels=y, candidate=wrong)
    assert not v.candidate_ok and v.worst == (1, 2)
    assert v.candidate_max_abs_error == pytest.approx(0.3)


@pytest.mark.parametrize("numeric", ["complex-step", "central-difference"])
def test_right_candidate_verifies(gs, numeric):
    rng = np.random.default_rng(1)
    z = rng.normal(0, 5, (2, 3, 6))
    y = rng.integers(0, 6, (2, 3))
    opts = dict(weights=[1, 2, 0.5, 1, 1, 3], label_smoothing=0.1, ignore_index=4)
    _, grad = torch_ce(z, labels=y, **opts)
    v = gs.verify(z, labels=y, candidate=grad, numeric=numeric, **opts)
    assert v.ok and v.candidate_ok and not v.findings
    assert v.analytic_grad.shape == z.shape
    np.testing.assert_allclose(v.analytic_grad, grad, rtol=1e-12, atol=1e-15)
    assert v.max_abs_error < 1e-6 and v.epsilon_used > 0


def test_candidate_jacobian(gs):
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    a = torch.softmax(torch.tensor(z), -1).numpy()
    right = np.stack([np.diag(r) - np.outer(r, r) for r in a])
    v = gs.verify(z, labels=[0, 2], candidate_jacobian=right)
    assert v.ok and v.candidate_jacobian_ok
    diagonal_only = np.stack([np.diag(r - r * r) for r in a])
    v = gs.verify(z, labels=[0, 2], candidate_jacobian=diagonal_only)
    assert not v.ok and not v.candidate_jacobian_ok
    f = next(f for f in v.findings if f.code == "DIAGONAL_ONLY_JACOBIAN")
    assert f.mistaken_grad.shape == (2, 3, 3)
    np.testing.assert_allclose(f.mistaken_grad, diagonal_only, atol=1e-12)


def test_zero_tolerances_are_zero(gs):
    # 1e-13 off: within the default atol, outside an explicit rtol=atol=0.
    z = np.array([[1.0, 2.0, 3.0]])
    _, grad = torch_ce(z, labels=[1])
    assert gs.verify(z, labels=[1], candidate=grad + 1e-13).candidate_ok
    assert not gs.verify(z, labels=[1], candidate=grad + 1e-13, rtol=0, atol=0).candidate_ok


@pytest.mark.parametrize("method", ["backward", "forward", "verify"])
def test_docstring_examples_run(gs, method):
    """The examples in help(gradserve.Client.<method>) give what they show."""
    fn = getattr(gradserve.Client, method)
    tests = doctest.DocTestFinder().find(fn, f"Client.{method}", globs={"gs": gs, "np": np})
    examples = sum(len(t.examples) for t in tests)
    assert examples >= 1
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0 and runner.tries == examples


def test_help_explains_the_seed_case():
    text = gradserve.Client.verify.__doc__
    assert "1.75, 1.75" in text and "6.125, 2.625" in text and "JACOBIAN_AT_LOGITS" in text
