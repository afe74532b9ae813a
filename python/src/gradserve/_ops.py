"""One description per RPC of what to send and how to read the answers, shared by both clients.

`limits` is (max_message_bytes, pipeline_bytes) of the client.
A `Call` holds the checked inputs, the row chunks (one when the request fits the message limit),
a function building the request for a row range, and how the response(s) become the result. The
sync and asyncio clients only differ in how they send.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from gradserve import _requests as R
from gradserve import _results
from gradserve import _tensors as T
from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb
from gradserve.errors import invalid


@dataclass
class Call:
    batch: R.Batch
    chunks: List[slice]
    make: Callable[[slice], Any]          # row range -> request message
    single: Callable[[Any], Any]          # the one response -> result
    assembly: Optional[_results.Assembly]  # chunked: collects the responses
    finish: Optional[Callable[[], Any]] = None

    def requests(self):
        for rows in self.chunks:
            yield self.make(rows)

    def where(self, index: int) -> str:
        """Which chunk a failure came from, for the error's details."""
        rows = self.chunks[min(index, len(self.chunks) - 1)]
        return (f"in chunk {index + 1} of {len(self.chunks)}: rows {rows.start}..{rows.stop - 1} of "
                f"the {self.batch.rows} rows the logits were flattened to")


def backward(limits: Tuple[int, int], logits: Any, labels: Any, target_probs: Any, grad_probs: Any,
             weights: Any, label_smoothing: float, ignore_index: Optional[int], reduction: str,
             method: str, grad_loss: Any, return_probs: bool, return_jacobian: bool) -> Call:
    method_id = R.choose("method", method, R.METHODS)
    given = [n for n, v in (("labels", labels), ("target_probs", target_probs),
                            ("grad_probs", grad_probs)) if v is not None]
    if len(given) != 1:
        raise invalid("backward needs exactly one of labels=, target_probs= (cross-entropy) or "
                      f"grad_probs= (an upstream dL/dA through softmax); got {given or 'none'}")
    if grad_probs is not None:
        extra = [n for n, v in (("weights", weights), ("ignore_index", ignore_index),
                                ("grad_loss", grad_loss)) if v is not None]
        if label_smoothing:
            extra.append("label_smoothing")
        if extra:
            raise invalid(f"{', '.join(extra)} apply to a loss; they do not go with grad_probs")
    b = R.make_batch(logits, labels=labels, target_probs=target_probs, grad_probs=grad_probs,
                     weights=weights, label_smoothing=label_smoothing, ignore_index=ignore_index,
                     reduction=reduction, grad_loss=grad_loss)
    item, c = T.itemsize(b.wire), b.classes
    per_response = c * item * (1 + bool(return_probs) + c * bool(return_jacobian)
                               + (method_id == pb.METHOD_CHAIN_RULE and grad_probs is None)) + 8
    chunks = R.plan(b, limits[0], per_row_request=R.request_row_bytes(b),
                    per_row_response=per_response, pipeline=limits[1])
    flags = dict(method=method_id, return_probs=return_probs, return_jacobian=return_jacobian)
    if len(chunks) == 1:
        return Call(b, chunks, lambda rows: R.backward_request(b, rows, **flags),
                    lambda r: _results.backward_result(b, r), None)
    assembly = _results.Assembly(b, chunks)
    scale = assembly.scale()
    return Call(b, chunks, lambda rows: R.backward_request(b, rows, chunk_scale=scale, **flags),
                None, assembly, assembly.backward)


def forward(limits: Tuple[int, int], logits: Any, labels: Any, target_probs: Any, log_probs: bool,
            weights: Any, label_smoothing: float, ignore_index: Optional[int],
            reduction: str) -> Call:
    if labels is not None and target_probs is not None:
        raise invalid("forward takes labels= or target_probs=, not both")
    b = R.make_batch(logits, labels=labels, target_probs=target_probs, weights=weights,
                     label_smoothing=label_smoothing, ignore_index=ignore_index, reduction=reduction)
    item = T.itemsize(b.wire)
    per_response = b.classes * item * (1 + bool(log_probs)) + 8
    chunks = R.plan(b, limits[0], per_row_request=R.request_row_bytes(b),
                    per_row_response=per_response, pipeline=limits[1])
    chunked = len(chunks) > 1
    make = lambda rows: R.forward_request(b, rows, log_probs=log_probs, chunked=chunked)  # noqa: E731
    if not chunked:
        return Call(b, chunks, make, lambda r: _results.forward_result(b, r), None)
    assembly = _results.Assembly(b, chunks)
    return Call(b, chunks, make, None, assembly, assembly.forward)


def verify(logits: Any, labels: Any, target_probs: Any, candidate: Any, candidate_jacobian: Any,
           rtol: float, atol: float, numeric: str, epsilon: Optional[float], weights: Any,
           label_smoothing: float, ignore_index: Optional[int], reduction: str) -> Call:
    if (labels is None) == (target_probs is None):
        raise invalid("verify needs exactly one of labels= or target_probs=")
    b = R.make_batch(logits, labels=labels, target_probs=target_probs, weights=weights,
                     label_smoothing=label_smoothing, ignore_index=ignore_index, reduction=reduction)
    numeric_id = R.choose("numeric", numeric, R.NUMERICS)

    def make(rows: slice) -> T.Outgoing:
        # The wire reads 0 as "the default"; the smallest positive double means exactly zero here.
        out = T.Outgoing(pb.VerifyGradientRequest(rtol=float(rtol) or sys.float_info.min,
                                                  atol=float(atol) or sys.float_info.min,
                                                  epsilon=float(epsilon or 0.0),
                                                  numeric_method=numeric_id))
        R.fill_common(out, b, rows, b.options)
        if candidate is not None:
            g, _ = T.as_wire(candidate, "candidate", T.FLOAT64)
            if g.size != b.logits.size:
                raise invalid(f"candidate has shape {list(g.shape)}; it must match logits, "
                              f"{list(b.shape)}")
            out.encode("candidate_grad", g, T.FLOAT64, b.logits.shape)
        if candidate_jacobian is not None:
            j, _ = T.as_wire(candidate_jacobian, "candidate_jacobian", T.FLOAT64)
            want = b.logits.shape + (b.classes,)
            if j.size != b.logits.size * b.classes:
                raise invalid(f"candidate_jacobian has shape {list(j.shape)}; logits of shape "
                              f"{list(b.shape)} need {list(b.shape) + [b.classes]}")
            out.encode("candidate_jacobian", j, T.FLOAT64, want)
        return out

    return Call(b, [slice(0, b.rows)], make, lambda r: _results.verify_result(b, r), None)
