"""gs.backward in a loop against `gradserve bench` on the same server, in one run.

Prints both logits throughputs and their ratio (the package's goal: >= 0.8x), for
[4096, 1000] float32 raw, class-index targets, MEAN, one call in flight:

    .venv/bin/python python/bench.py [--seconds 10] [--rounds 1] [--unary] [--target HOST:PORT]

Without --target it starts build/server/gradserve-server on a free port (BUILD_DIR or build).
Rounds alternate the two clients, so drift in the shared machine's speed hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import gradserve

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / os.environ.get("BUILD_DIR", "build")


def start_server() -> tuple:
    proc = subprocess.Popen([str(BUILD / "server" / "gradserve-server"), "--listen=127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        sys.exit(f"bench: the server did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].split()[0]


def cli_bench(target: str, rows: int, classes: int, seconds: float) -> float:
    out = subprocess.run(
        [str(BUILD / "client" / "gradserve"), f"--target={target}", "--format=json", "bench",
         "--rpc", "backward", "--shape", f"{rows},{classes}", "--dtype", "f32", "--encoding", "raw",
         "--concurrency", "1", "--duration", str(seconds)],
        check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["logits_bytes_per_s"])


def python_bench(gs: gradserve.Client, rows: int, classes: int, seconds: float) -> float:
    rng = np.random.default_rng(1)
    z = rng.uniform(-4, 4, (rows, classes)).astype(np.float32)
    y = rng.integers(0, classes, rows)
    gs.backward(z, labels=y)  # connect and warm up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        r = gs.backward(z, labels=y)
        calls += 1
    assert r.grad_logits.shape == z.shape
    return calls * z.nbytes / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--shape", default="4096,1000")
    parser.add_argument("--target", default=None)
    parser.add_argument("--unary", action="store_true",
                        help="also time one call at a time (pipeline_bytes=0)")
    args = parser.parse_args()
    rows, classes = (int(x) for x in args.shape.split(","))
    proc, target = (None, args.target) if args.target else start_server()
    try:
        cli, py, unary = [], [], []
        with gradserve.Client(target) as gs, gradserve.Client(target, pipeline_bytes=0) as one:
            for _ in range(args.rounds):
                cli.append(cli_bench(target, rows, classes, args.seconds))
                py.append(python_bench(gs, rows, classes, args.seconds))
                if args.unary:
                    unary.append(python_bench(one, rows, classes, args.seconds))
        c, p = sum(cli) / len(cli), sum(py) / len(py)
        print(f"shape [{rows}, {classes}] float32 raw, concurrency 1, {args.rounds} x "
              f"{args.seconds:g} s each")
        print(f"gradserve bench      : {c / 1e9:.3f} GB/s of logits")
        print(f"gs.backward          : {p / 1e9:.3f} GB/s of logits, {p / c:.2f}x (goal >= 0.8x)")
        if unary:
            u = sum(unary) / len(unary)
            print(f"  one call at a time : {u / 1e9:.3f} GB/s of logits, {u / c:.2f}x "
                  "(pipeline_bytes=0)")
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
