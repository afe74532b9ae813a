"""From the caller's arguments to gradserve.v1 requests: checks, flattening to rows, and chunks.

Logits `[..., classes]` are flattened to `[rows, classes]` (rank-1 logits stay one unbatched
example), labels to `[rows]`. A request whose raw bytes, or whose response's, would exceed the
message limit is planned as row chunks sent with REDUCTION_SUM; for MEAN each chunk's grad_loss
is grad_loss / D, with D the whole batch's denominator (torch's: the weights of the non-ignored
rows for class indices, the batch size for probability targets), and the loss is combined after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from gradserve import _tensors as T
from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb
from gradserve.errors import invalid

REDUCTIONS = {"mean": pb.REDUCTION_MEAN, "sum": pb.REDUCTION_SUM, "none": pb.REDUCTION_NONE}
METHODS = {"fused": pb.METHOD_FUSED, "chain-rule": pb.METHOD_CHAIN_RULE}
NUMERICS = {"complex-step": pb.NUMERIC_METHOD_COMPLEX_STEP,
            "central-difference": pb.NUMERIC_METHOD_CENTRAL_DIFFERENCE}


def choose(name: str, value: Any, allowed: dict) -> int:
    if value not in allowed:
        names = ", ".join(repr(k) for k in allowed)
        raise invalid(f"{name} must be one of {names}; got {value!r}")
    return allowed[value]


@dataclass
class Batch:
    """The caller's inputs, checked and converted once, as rows."""

    logits: np.ndarray            # raw payload dtype; [rows, classes], or [classes] if unbatched
    wire: int                     # DataType of every tensor sent
    shape: Tuple[int, ...]        # the caller's logits shape: outputs come back in it
    labels: Optional[np.ndarray]  # int64 [rows]
    target_probs: Optional[np.ndarray]
    grad_probs: Optional[np.ndarray]
    grad_loss: Optional[np.ndarray]
    weights: Optional[np.ndarray]  # float64 [classes]
    options: pb.LossOptions

    @property
    def unbatched(self) -> bool:
        return self.logits.ndim == 1

    @property
    def rows(self) -> int:
        return 1 if self.unbatched else self.logits.shape[0]

    @property
    def classes(self) -> int:
        return self.logits.shape[-1]

    @property
    def lead_shape(self) -> Tuple[int, ...]:
        return self.shape[:-1]

    @property
    def reduction(self) -> int:
        return self.options.reduction


def make_batch(logits: Any, *, labels: Any = None, target_probs: Any = None, grad_probs: Any = None,
               weights: Any = None, label_smoothing: float = 0.0, ignore_index: Optional[int] = None,
               reduction: str = "mean", grad_loss: Any = None, wire: int = 0) -> Batch:
    z, wire = T.as_wire(logits, "logits", wire)
    shape = tuple(z.shape)
    if z.ndim == 0:
        raise invalid("logits is a scalar; it needs a last dimension of classes, e.g. shape "
                      "[batch, classes] or [classes]")
    lead = shape[:-1]
    rows2d = z.reshape(-1, shape[-1]) if z.ndim > 2 else z
    options = pb.LossOptions(reduction=choose("reduction", reduction, REDUCTIONS),
                             label_smoothing=float(label_smoothing))
    if ignore_index is not None:
        options.ignore_index = int(ignore_index)
    w = None
    if weights is not None:
        w = np.asarray(T.as_wire(weights, "weights", T.FLOAT64)[0], dtype=np.float64).reshape(-1)
        if w.size != shape[-1]:
            raise invalid(f"weights has {w.size} values; logits of shape {list(shape)} has "
                          f"{shape[-1]} classes, one weight each")
        options.class_weights[:] = w.tolist()

    y = None
    if labels is not None:
        y = _labels(labels, lead)
    same = lambda x, name: _like(x, name, shape, wire).reshape(rows2d.shape)  # noqa: E731
    p = same(target_probs, "target_probs") if target_probs is not None else None
    g = same(grad_probs, "grad_probs") if grad_probs is not None else None
    gl = None
    if grad_loss is not None:
        gl, _ = T.as_wire(grad_loss, "grad_loss", wire)
        want = lead if reduction == "none" and z.ndim > 1 else ()
        if gl.size != math.prod(want):
            raise invalid(f"grad_loss has shape {list(gl.shape)}; with reduction={reduction!r} "
                          f"and logits of shape {list(shape)} it must have shape {list(want)}")
        gl = gl.reshape(-1) if want else gl.reshape(())
    return Batch(rows2d, wire, shape, y, p, g, gl, w, options)


def _labels(labels: Any, lead: Tuple[int, ...]) -> np.ndarray:
    if T._is_torch(labels):
        labels = labels.detach().cpu()
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" and y.size:
        raise invalid(f"labels must be integer class indices (got dtype {y.dtype}); for "
                      "probabilities or soft labels pass target_probs=")
    want = lead if lead else (1,)
    if y.size != math.prod(want) or (lead and y.shape != lead and y.ndim != 1):
        raise invalid(f"labels has shape {list(y.shape)}; logits with leading shape {list(lead)} "
                      f"need one label per row, shape {list(lead) or []}")
    return np.asarray(y, dtype=np.int64, order="C").reshape(-1)


def _like(x: Any, name: str, shape: Tuple[int, ...], wire: int) -> np.ndarray:
    a, _ = T.as_wire(x, name, wire)
    if tuple(a.shape) != shape:
        raise invalid(f"{name} has shape {list(a.shape)}; it must match logits, {list(shape)}")
    return a


def denominator(b: Batch) -> Tuple[float, bool]:
    """(MEAN's denominator over the whole batch, whether any row counts) as torch computes them."""
    if b.labels is None:
        return float(b.rows), b.rows > 0
    keep = np.ones(b.rows, dtype=bool)
    if b.options.HasField("ignore_index"):
        keep = b.labels != b.options.ignore_index
    if b.weights is None:
        count = int(keep.sum())
        return float(count), count > 0
    # Out-of-range labels are the server's to report; clipping only keeps this from failing first.
    w = np.take(b.weights, b.labels[keep], mode="clip")
    # Summed in row order, as the server does, so a chunked MEAN divides by the very same number.
    return (float(np.cumsum(w)[-1]) if w.size else 0.0), bool(keep.any())


def _rows(a: Optional[np.ndarray], rows: slice) -> Optional[np.ndarray]:
    return None if a is None else a[rows]


def fill_common(out: T.Outgoing, b: Batch, rows: slice, options: pb.LossOptions) -> None:
    """Logits, targets and options of rows `rows` into a Forward/Backward/Verify request."""
    req = out.message
    z = b.logits if b.unbatched else b.logits[rows]
    out.encode("logits", z, b.wire, z.shape)
    if b.labels is not None:
        req.targets.class_indices.values[:] = b.labels[rows].tolist()
    elif b.target_probs is not None:
        p = b.target_probs if b.unbatched else b.target_probs[rows]
        out.encode("targets.probabilities", p, b.wire, p.shape)
    if options.ByteSize():
        req.options.CopyFrom(options)


def backward_request(b: Batch, rows: slice, *, method: int, return_probs: bool,
                     return_jacobian: bool, chunk_scale: Optional[float] = None) -> T.Outgoing:
    """A BackwardRequest for `rows`; chunk_scale set: REDUCTION_SUM with grad_loss = chunk_scale."""
    out = T.Outgoing(pb.BackwardRequest(method=method, return_probabilities=return_probs,
                                        return_jacobian=return_jacobian))
    req = out.message
    options = b.options
    if chunk_scale is not None and b.reduction != pb.REDUCTION_NONE:
        options = pb.LossOptions()
        options.CopyFrom(b.options)
        options.reduction = pb.REDUCTION_SUM
    fill_common(out, b, rows, options if b.grad_probs is None else pb.LossOptions())
    if b.grad_probs is not None:
        g = b.grad_probs if b.unbatched else b.grad_probs[rows]
        out.encode("grad_probabilities", g, b.wire, g.shape)
    if chunk_scale is not None and b.reduction != pb.REDUCTION_NONE and b.grad_probs is None:
        req.grad_loss.shape[:] = []
        req.grad_loss.values[:] = [chunk_scale]
        req.grad_loss.dtype = T.FLOAT64
    elif b.grad_loss is not None:
        gl = b.grad_loss if b.grad_loss.ndim == 0 else b.grad_loss[rows]
        out.encode("grad_loss", gl, b.wire, gl.shape)
    return out


def forward_request(b: Batch, rows: slice, *, log_probs: bool, chunked: bool) -> T.Outgoing:
    out = T.Outgoing(pb.ForwardRequest(return_log_probabilities=log_probs))
    options = b.options
    if chunked and b.reduction == pb.REDUCTION_MEAN:
        options = pb.LossOptions()
        options.CopyFrom(b.options)
        options.reduction = pb.REDUCTION_SUM
    fill_common(out, b, rows, options)
    return out


def plan(b: Batch, limit: int, *, per_row_request: int, per_row_response: int,
         pipeline: int = 0) -> List[slice]:
    """Row ranges whose requests and responses each stay within `limit` bytes (one if it fits).

    Sizes are the raw bytes sent or received per row plus a margin for framing, options and
    weights; a single row over the limit is still sent, for the server to refuse with its numbers.
    With `pipeline` > 0, a call over 2 × pipeline bytes also goes as chunks of about `pipeline`
    bytes, so the client encodes and decodes some while the server computes others.
    """
    weights = 0 if b.weights is None else 9 * b.weights.size
    fixed = lambda size: 4096 + size // 256 + weights  # noqa: E731  (framing, options, weights)
    per_row = max(per_row_request, per_row_response, 1)
    total = b.rows * per_row + fixed(limit)
    if b.unbatched or (total <= limit and (pipeline <= 0 or total <= 2 * pipeline)):
        return [slice(0, b.rows)]
    target = min(limit, max(pipeline, 1 << 16)) if pipeline > 0 else limit
    step = max(1, (target - fixed(target)) // per_row)
    return [slice(s, min(s + step, b.rows)) for s in range(0, b.rows, step)]


def request_row_bytes(b: Batch) -> int:
    """Raw bytes sent per row: logits, targets or grad_probs, labels (≤ 10 bytes), grad_loss."""
    item = T.itemsize(b.wire)
    n = b.classes * item
    n += b.classes * item if b.target_probs is not None else 0
    n += b.classes * item if b.grad_probs is not None else 0
    n += 10 if b.labels is not None else 0
    n += item if b.grad_loss is not None and b.grad_loss.ndim else 0
    return n
