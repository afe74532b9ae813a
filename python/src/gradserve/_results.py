"""What the calls return, and how responses (one, or one per row chunk) become those results.

Outputs are numpy arrays in the shape of the caller's logits (`[..., classes]`; the Jacobian
`[..., classes, classes]`; a NONE loss `[...]`; MEAN and SUM losses 0-d arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from gradserve import _tensors as T
from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb
from gradserve._incoming import Incoming
from gradserve._requests import Batch, denominator


@dataclass(frozen=True)
class BackwardResult:
    """dL/dlogits and what else was asked for.

    grad_logits: dL/dz, the logits' shape. loss: 0-d for "mean"/"sum", the leading shape for
    "none"; None for grad_probs requests. probs: softmax(z) when return_probs. jacobian:
    [..., classes, classes] when return_jacobian. grad_probs: dL/da with method="chain-rule".
    reduction_denominator: what the summed loss was divided by ("mean" only; else 0).
    """

    grad_logits: np.ndarray
    loss: Optional[np.ndarray]
    probs: Optional[np.ndarray] = None
    jacobian: Optional[np.ndarray] = None
    grad_probs: Optional[np.ndarray] = None
    reduction_denominator: float = 0.0


@dataclass(frozen=True)
class ForwardResult:
    """softmax(z) (`probs`), log-softmax when asked, the loss when targets were given."""

    probs: np.ndarray
    log_probs: Optional[np.ndarray] = None
    loss: Optional[np.ndarray] = None
    reduction_denominator: float = 0.0


@dataclass(frozen=True)
class Finding:
    """One known mistake that explains a wrong candidate.

    code: e.g. "JACOBIAN_AT_LOGITS" (the proto's FindingCode without its prefix). message: what
    was done wrong and the right formula, with this input's numbers. mistaken_grad: what that
    mistake produces for this input (None for UNEXPLAINED). residual: max |candidate - mistaken_grad|.
    """

    code: str
    message: str
    mistaken_grad: Optional[np.ndarray]
    residual: float


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on a gradient (all arrays float64, in the logits' shape).

    ok: the analytic gradient matches the numeric one, and every candidate given is right.
    candidate_ok / candidate_jacobian_ok: the candidate gradient / Jacobian is right (False when
    not given). analytic_grad, numeric_grad: the right gradient and its numeric check.
    max_abs_error, max_rel_error: analytic vs numeric. candidate_max_abs_error: candidate vs
    analytic. worst: index into the logits of the largest error, `(row, class)` for 2-D logits.
    findings: the known mistakes that explain a wrong candidate. summary: the server's paragraph.
    """

    ok: bool
    candidate_ok: bool
    candidate_jacobian_ok: bool
    analytic_grad: np.ndarray
    numeric_grad: np.ndarray
    max_abs_error: float
    max_rel_error: float
    candidate_max_abs_error: float
    worst: Tuple[int, ...]
    epsilon_used: float
    summary: str
    findings: List[Finding] = field(default_factory=list)


def _opt(r: Incoming, name: str, shape: Sequence[int]) -> Optional[np.ndarray]:
    a = r.tensor(name)
    return None if a is None else a.reshape(shape)


def _loss_shape(b: Batch) -> Tuple[int, ...]:
    return b.lead_shape if b.reduction == pb.REDUCTION_NONE and not b.unbatched else ()


def backward_result(b: Batch, r: Incoming) -> BackwardResult:
    shape, c = b.shape, b.classes
    return BackwardResult(
        grad_logits=_opt(r, "grad_logits", shape),
        loss=_opt(r, "loss", _loss_shape(b)),
        probs=_opt(r, "probabilities", shape),
        jacobian=_opt(r, "jacobian", shape + (c,)),
        grad_probs=_opt(r, "grad_probabilities", shape),
        reduction_denominator=r.message.reduction_denominator)


def forward_result(b: Batch, r: Incoming) -> ForwardResult:
    return ForwardResult(probs=_opt(r, "probabilities", b.shape),
                         log_probs=_opt(r, "log_probabilities", b.shape),
                         loss=_opt(r, "loss", _loss_shape(b)),
                         reduction_denominator=r.message.reduction_denominator)


def verify_result(b: Batch, incoming: Incoming) -> VerifyResult:
    shape, r = b.shape, incoming.message
    findings = []
    for f in r.findings:
        mistaken = None
        if f.HasField("mistaken_grad") and len(f.mistaken_grad.shape):
            m = T.decode(f.mistaken_grad)
            # A Jacobian finding holds [rows, classes, classes].
            mistaken = m.reshape(shape if m.size == b.logits.size else shape + (b.classes,))
        findings.append(Finding(code=pb.FindingCode.Name(f.code).removeprefix("FINDING_CODE_"),
                                message=f.message, mistaken_grad=mistaken, residual=f.residual))
    if b.unbatched:
        worst: Tuple[int, ...] = (int(r.worst_class),)
    else:
        lead = np.unravel_index(int(r.worst_row), b.lead_shape) if b.rows else (int(r.worst_row),)
        worst = tuple(int(i) for i in lead) + (int(r.worst_class),)
    return VerifyResult(
        ok=r.ok, candidate_ok=r.candidate_ok, candidate_jacobian_ok=r.candidate_jacobian_ok,
        analytic_grad=_opt(incoming, "analytic_grad", shape),
        numeric_grad=_opt(incoming, "numeric_grad", shape),
        max_abs_error=r.max_abs_error, max_rel_error=r.max_rel_error,
        candidate_max_abs_error=r.candidate_max_abs_error, worst=worst,
        epsilon_used=r.epsilon_used, summary=r.summary, findings=findings)


class Assembly:
    """Collects the responses to row chunks into one result, as one call would have given it."""

    def __init__(self, b: Batch, chunks: List[slice]) -> None:
        self.b, self.chunks = b, chunks
        self.denominator, self.any_row = denominator(b)
        self.mean = b.reduction == pb.REDUCTION_MEAN
        self.out: dict = {}
        self.loss_sum = 0.0
        self.done = 0

    def scale(self) -> float:
        """grad_loss each chunk is sent with: grad_loss / D for MEAN (0 if no row counts)."""
        if self.b.reduction == pb.REDUCTION_NONE or self.b.grad_probs is not None:
            return 1.0  # unused: NONE chunks carry their rows' grad_loss, VJPs none
        gl = self.b.grad_loss
        if gl is not None and self.b.wire == T.BFLOAT16:
            gl = T.from_bfloat16(gl)
        g = 1.0 if gl is None else float(gl)
        if not self.mean:
            return g
        # (1 / D) * g, as the server scales one call's rows, so chunks get the same numbers.
        return (1.0 / self.denominator) * g if self.any_row and self.denominator != 0 else 0.0

    def add(self, r: Incoming) -> None:
        rows = self.chunks[self.done]
        self.done += 1
        fields = (("grad_logits", 0), ("probabilities", 0), ("grad_probabilities", 0),
                  ("jacobian", 1), ("log_probabilities", 0))
        for name, extra in fields:
            part = r.tensor(name)
            if part is not None:
                if name not in self.out:
                    tail = (self.b.classes,) * (1 + extra)
                    self.out[name] = np.empty((self.b.rows,) + tail, dtype=part.dtype)
                self.out[name][rows] = part.reshape((-1,) + part.shape[1:])
        loss = r.tensor("loss")
        if loss is not None:
            if self.b.reduction == pb.REDUCTION_NONE:
                self.out.setdefault("loss", np.empty(self.b.rows, dtype=loss.dtype))[rows] = loss
            else:
                self.out.setdefault("loss_dtype", loss.dtype)
                self.loss_sum += float(loss.sum(dtype=np.float64))

    def _loss(self) -> Optional[np.ndarray]:
        if "loss" in self.out:
            return self.out["loss"].reshape(self.b.lead_shape)
        if "loss_dtype" not in self.out:
            return None
        total = self.loss_sum
        if self.mean:
            # torch: no counted row, or a zero weight sum, makes the mean NaN.
            total = total / self.denominator if self.any_row and self.denominator != 0 else float("nan")
        return np.asarray(total, dtype=self.out["loss_dtype"])

    def _nan_rows(self) -> None:
        """MEAN with a zero weight sum over counted rows: torch's NaN gradient on those rows."""
        if not (self.mean and self.any_row and self.denominator == 0 and self.b.labels is not None):
            return
        keep = np.ones(self.b.rows, dtype=bool)
        if self.b.options.HasField("ignore_index"):
            keep = self.b.labels != self.b.options.ignore_index
        for name in ("grad_logits", "grad_probabilities"):
            if name in self.out:
                self.out[name][keep] = np.nan

    def _get(self, name: str, extra: int = 0) -> Optional[np.ndarray]:
        a = self.out.get(name)
        return None if a is None else a.reshape(self.b.shape + (self.b.classes,) * extra)

    def backward(self) -> BackwardResult:
        self._nan_rows()
        return BackwardResult(
            grad_logits=self._get("grad_logits"), loss=self._loss(), probs=self._get("probabilities"),
            jacobian=self._get("jacobian", 1), grad_probs=self._get("grad_probabilities"),
            reduction_denominator=self.denominator if self.mean and self.b.grad_probs is None else 0.0)

    def forward(self) -> ForwardResult:
        has_targets = self.b.labels is not None or self.b.target_probs is not None
        return ForwardResult(
            probs=self._get("probabilities"), log_probs=self._get("log_probabilities"),
            loss=self._loss(),
            reduction_denominator=self.denominator if self.mean and has_targets else 0.0)

