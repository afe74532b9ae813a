"""Fixtures: real gradserve-server processes on free ports, clients, and the PyTorch oracle.

The server binary is $GRADSERVE_SERVER, else <repo>/$BUILD_DIR/server/gradserve-server (BUILD_DIR
defaults to build). Tests import the installed package (scripts/setup installs it into .venv).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradserve


ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(os.environ.get("GRADSERVE_SERVER",
                             ROOT / os.environ.get("BUILD_DIR", "build") / "server" / "gradserve-server"))


class ServerProcess:
    """gradserve-server --listen=127.0.0.1:0 plus `flags`; `.address` is what it printed."""

    def __init__(self, *flags: str) -> None:
        if not SERVER.is_file():
            raise RuntimeError(f"{SERVER} not found: build it first (scripts/setup)")
        self.proc = subprocess.Popen([str(SERVER), "--listen=127.0.0.1:0", *flags],
                                     stdout=subprocess.PIPE, text=True)
        seen: List[str] = []
        for line in self.proc.stdout:
            seen.append(line)
            if "listening on " in line:
                self.address = line.split("listening on ", 1)[1].split()[0]
                break
        else:
            self.proc.wait()
            raise RuntimeError(f"{SERVER} did not report its address; it printed: {''.join(seen)}")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used (from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    s = ServerProcess()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def small_server() -> Iterator[ServerProcess]:
    """A server with --max_message_mib=1, for chunking tests that move little data."""
    s = ServerProcess("--max_message_mib=1")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def gs(server: ServerProcess) -> Iterator[gradserve.Client]:
    # One call per request (no pipelining): the reference the chunked calls are compared with.
    with gradserve.Client(server.address, timeout=60, pipeline_bytes=0) as client:
        yield client


@pytest.fixture(scope="session")
def small_gs(small_server: ServerProcess) -> Iterator[gradserve.Client]:
    with gradserve.Client(small_server.address, timeout=60, max_message_bytes=1 << 20) as client:
        yield client


def torch_ce(logits, labels=None, target_probs=None, weights=None, label_smoothing=0.0,
             ignore_index: Optional[int] = None, reduction="mean", grad_loss=None):
    """(loss, grad) from torch.nn.functional.cross_entropy + autograd, as numpy."""
    z = torch.tensor(np.asarray(logits), requires_grad=True)
    classes = z.shape[-1]
    flat = z.reshape(-1, classes) if z.ndim > 1 else z
    if labels is not None:
        target = torch.tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)
        if z.ndim == 1:
            target = target.reshape(())
    else:
        target = torch.tensor(np.asarray(target_probs, dtype=np.asarray(logits).dtype))
        target = target.reshape(flat.shape)
    w = None if weights is None else torch.tensor(np.asarray(weights), dtype=z.dtype)
    loss = F.cross_entropy(flat, target, weight=w, label_smoothing=label_smoothing,
                           ignore_index=-100 if ignore_index is None else ignore_index,
                           reduction=reduction)
    g = torch.ones_like(loss) if grad_loss is None else torch.tensor(
        np.asarray(grad_loss), dtype=loss.dtype).reshape(loss.shape)
    loss.backward(g)
    return loss.detach().numpy(), z.grad.numpy()


def tolerance(dtype) -> dict:
    """The contract's float32 bound (classes ≤ 1000 here), or float64 rounding."""
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-10, atol=1e-12)
