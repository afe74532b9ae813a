"""Round-robin over two servers: with an ipv4:a,b target both do the work."""

from __future__ import annotations

import numpy as np

import gradserve
from conftest import ServerProcess


def test_round_robin_over_two_servers():
    a, b = ServerProcess(), ServerProcess()
    try:
        z = np.random.default_rng(0).normal(size=(512, 1000)).astype(np.float32)  # 2 MB: each call costs CPU time
        y = np.zeros(512, int)
        with gradserve.Client(f"ipv4:{a.address},{b.address}", timeout=60) as gs:
            for _ in range(4):  # both connections up
                gs.health()
            before = a.cpu_seconds(), b.cpu_seconds()
            for _ in range(24):
                r = gs.backward(z, labels=y)
            used = a.cpu_seconds() - before[0], b.cpu_seconds() - before[1]
        assert r.grad_logits.shape == z.shape
        # Round robin alternates: each server did a good share of the 24 calls.
        print("server CPU seconds", used)
        assert min(used) > 0.25 * sum(used) and min(used) > 0.02, used
    finally:
        a.stop()
        b.stop()
