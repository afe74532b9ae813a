"""gradserve.aio.Client: the same methods as coroutines, with the same results and errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import gradserve
from conftest import torch_ce


def run(coro):
    return asyncio.run(coro)


def test_every_method(server):
    z = np.random.default_rng(0).normal(size=(4, 6))
    y = np.array([0, 5, 2, 2])

    async def main():
        async with gradserve.aio.Client(server.address, timeout=30) as gs:
            health = await gs.health()
            # Several calls in flight on one channel.
            r, f, v = await asyncio.gather(
                gs.backward(z, labels=y, weights=np.arange(1, 7), return_probs=True),
                gs.forward(z, labels=y, log_probs=True),
                gs.verify([1.75, 1.75], target_probs=[0, 1], candidate=[6.125, 2.625]))
            return health, r, f, v

    health, r, f, v = run(main())
    assert health == "SERVING"
    loss, grad = torch_ce(z, labels=y, weights=np.arange(1, 7))
    np.testing.assert_allclose(r.grad_logits, grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.loss, loss, rtol=1e-12)
    np.testing.assert_allclose(f.probs.sum(-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(f.loss, torch_ce(z, labels=y)[0], rtol=1e-12)
    assert not v.candidate_ok and v.findings[0].code == "JACOBIAN_AT_LOGITS"


def test_chunked_backward_and_forward_equal_one_call(gs, small_server):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 100))  # 2.3 MiB of float64 logits, over the 1 MiB limit
    y = rng.integers(0, 100, 3000)

    async def main():
        async with gradserve.aio.Client(small_server.address, max_message_bytes=1 << 20) as small:
            return (await small.backward(z, labels=y, ignore_index=4, label_smoothing=0.2),
                    await small.forward(z, labels=y, reduction="sum"))

    r, f = run(main())
    one = gs.backward(z, labels=y, ignore_index=4, label_smoothing=0.2)
    np.testing.assert_allclose(r.grad_logits, one.grad_logits, rtol=1e-13, atol=1e-17)
    np.testing.assert_allclose(r.loss, one.loss, rtol=1e-12)
    np.testing.assert_allclose(f.loss, gs.forward(z, labels=y, reduction="sum").loss, rtol=1e-12)


def test_errors_are_the_same_classes(server, small_server):
    async def main():
        async with gradserve.aio.Client(server.address) as gs:
            with pytest.raises(gradserve.InvalidArgument, match=r"\[0, 2\)"):
                await gs.backward([[1.0, 2.0]], labels=[5])
        async with gradserve.aio.Client(small_server.address, max_message_bytes=1 << 20) as gs:
            with pytest.raises(gradserve.InvalidArgument, match=r"chunk \d+ of \d+"):
                y = np.zeros(3000, int)
                y[-1] = 100
                await gs.backward(np.zeros((3000, 100)), labels=y)
            with pytest.raises(gradserve.ResourceExhausted):
                await gs.backward(np.zeros((1, 500)), labels=[0], return_jacobian=True)

    run(main())
