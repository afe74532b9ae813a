"""gradserve.Client: softmax cross-entropy forward passes, gradients and verification over gRPC.

numpy in, numpy out; batches of any size (split into row chunks under the message limit, with the
results one call would give); errors as gradserve.Error subclasses that carry the server's message.
"""

from __future__ import annotations

import collections
from typing import Any, Optional, Sequence, Union

import grpc

from gradserve import _channel, _ops
from gradserve._proto.grpc.health.v1 import health_pb2
from gradserve._results import BackwardResult, ForwardResult, VerifyResult
from gradserve.errors import from_rpc_error

ArrayLike = Any  # anything numpy.asarray accepts, CPU torch tensors included
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
# Calls over twice this go as row chunks of about this size (see Client): measured 1.5-3.7x the
# throughput of one [4096, 1000] float32 call, since grpcio's per-message copies then overlap
# with the server's work.
DEFAULT_PIPELINE_BYTES = 2 << 20
FORWARD_PIPELINE = 4  # Forward chunks in flight at once


class Client:
    """A connection to one gradserve server or several (round-robin).

    Args:
        target: "host:port", "dns:///host:port" or "ipv4:a:port,b:port" (calls rotate over every
            address; UNAVAILABLE is retried with backoff by gRPC).
        token: bearer token, for a server started with --token_file.
        root_certificates: PEM bytes of the CA to trust (TLS), True for the system's roots, None
            for plaintext.
        timeout: seconds each call (a chunked call as a whole) may take; None: no deadline.
        max_message_bytes: the server's --max_message_mib in bytes; bigger requests or responses
            are split into row chunks.
        pipeline_bytes: calls over twice this also go as row chunks of about this size, so the
            client encodes and decodes some while the server computes others (much faster for
            big batches; the same numbers to rounding); 0: one call whenever
            it fits max_message_bytes.

    Use it as a context manager, or call close():

    >>> with gradserve.Client("127.0.0.1:50051") as gs:      # doctest: +SKIP
    ...     r = gs.backward(logits, labels=labels)
    """

    def __init__(self, target: str = "127.0.0.1:50051", token: Optional[str] = None,
                 root_certificates: Union[bytes, str, bool, None] = None,
                 timeout: Optional[float] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 pipeline_bytes: int = DEFAULT_PIPELINE_BYTES) -> None:
        _channel.connect(self, grpc, target, token, root_certificates, timeout, max_message_bytes,
                         pipeline_bytes)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _unary(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def backward(self, logits: ArrayLike, labels: Optional[ArrayLike] = None,
                 target_probs: Optional[ArrayLike] = None, grad_probs: Optional[ArrayLike] = None,
                 weights: Optional[Sequence[float]] = None, label_smoothing: float = 0.0,
                 ignore_index: Optional[int] = None, reduction: str = "mean",
                 method: str = "fused", grad_loss: Optional[ArrayLike] = None,
                 return_probs: bool = False, return_jacobian: bool = False) -> BackwardResult:
        """dL/dlogits of cross-entropy on softmax(logits), as torch's cross_entropy + autograd.

        Args:
            logits: [..., classes] (e.g. [batch, classes], [batch, seq, vocab], or [classes] for
                one unbatched example). float32/float64/float16 stay so; a torch bfloat16
                tensor is sent as bfloat16 (its outputs come back as float32); others float64.
            labels: integer class indices, the logits' leading shape; or
            target_probs: probabilities (or soft labels), the logits' shape; or
            grad_probs: an upstream dL/d softmax(z): the result is the VJP a ⊙ (g − ⟨g, a⟩).
            weights: one weight per class. label_smoothing: in [0, 1].
            ignore_index: rows with this label get no loss and no gradient.
            reduction: "mean" (torch's: divided by the weights of the counted rows), "sum", "none".
            method: "fused" (closed form) or "chain-rule" (dL/dA times J(a); gives grad_probs).
            grad_loss: upstream dL/dloss: a scalar, or the leading shape for "none"; default 1.
            return_probs, return_jacobian: also return softmax(z), and J(a) per row.

        Returns:
            BackwardResult: grad_logits, loss, probs, jacobian, grad_probs, reduction_denominator.

        A batch over the message limit (or over 2 × pipeline_bytes) goes as row chunks over one
        BackwardStream (REDUCTION_SUM, grad_loss divided by the whole batch's MEAN denominator),
        combined into the same result (to rounding).

        >>> r = gs.backward([[2.0, 1.0, 0.1]], labels=[0])
        >>> r.grad_logits.round(4), float(r.loss).__round__(4)
        (array([[-0.341 ,  0.2424,  0.0986]]), 0.417)
        """
        call = _ops.backward(self._limits, logits, labels, target_probs, grad_probs,
                             weights, label_smoothing, ignore_index, reduction, method, grad_loss,
                             return_probs, return_jacobian)
        if call.assembly is None:
            return call.single(self._unary(self._stub.Backward, call.make(call.chunks[0])))
        responses = self._stub.BackwardStream(call.requests(), timeout=self.timeout,
                                              metadata=self._metadata)
        try:
            for response in responses:
                call.assembly.add(response)
        except grpc.RpcError as e:
            raise from_rpc_error(e, call.where(call.assembly.done)) from None
        return call.finish()

    def forward(self, logits: ArrayLike, labels: Optional[ArrayLike] = None,
                target_probs: Optional[ArrayLike] = None, log_probs: bool = False,
                weights: Optional[Sequence[float]] = None, label_smoothing: float = 0.0,
                ignore_index: Optional[int] = None, reduction: str = "mean") -> ForwardResult:
        """softmax(logits) row-wise; log-softmax when log_probs; the loss when targets are given.

        Arguments as for backward(). Returns ForwardResult: probs, log_probs, loss,
        reduction_denominator. A batch over the message limit goes as pipelined row chunks.

        >>> gs.forward([1.75, 1.75], target_probs=[0, 1]).probs
        array([0.5, 0.5])
        """
        call = _ops.forward(self._limits, logits, labels, target_probs, log_probs,
                            weights, label_smoothing, ignore_index, reduction)
        if call.assembly is None:
            return call.single(self._unary(self._stub.Forward, call.make(call.chunks[0])))
        pending: collections.deque = collections.deque()
        try:
            for request in call.requests():
                if len(pending) == FORWARD_PIPELINE:
                    call.assembly.add(pending.popleft().result())
                pending.append(self._stub.Forward.future(request, timeout=self.timeout,
                                                         metadata=self._metadata))
            while pending:
                call.assembly.add(pending.popleft().result())
        except grpc.RpcError as e:
            for f in pending:
                f.cancel()
            raise from_rpc_error(e, call.where(call.assembly.done)) from None
        return call.finish()

    def verify(self, logits: ArrayLike, labels: Optional[ArrayLike] = None,
               target_probs: Optional[ArrayLike] = None, candidate: Optional[ArrayLike] = None,
               candidate_jacobian: Optional[ArrayLike] = None, rtol: float = 1e-5,
               atol: float = 1e-8, numeric: str = "complex-step", epsilon: Optional[float] = None,
               weights: Optional[Sequence[float]] = None, label_smoothing: float = 0.0,
               ignore_index: Optional[int] = None, reduction: str = "mean") -> VerifyResult:
        """Is a hand-derived gradient right, and if not, which known mistake explains it?

        The server computes the analytic gradient (float64), checks it against a numeric
        derivative of the loss (numeric="complex-step", exact to rounding, or
        "central-difference" with step `epsilon`), and compares `candidate` (your dL/dlogits)
        and `candidate_jacobian` (your softmax Jacobian, [..., classes, classes]) with
        numpy.allclose's rule |x - ref| <= atol + rtol·|ref| (rtol=0, atol=0 mean exactly zero).
        Other arguments as for backward().

        The classic mistake: logits (1.75, 1.75), target (0, 1). The right gradient is
        a - t = (0.5, -0.5) with a = softmax(z) = (0.5, 0.5); evaluating the softmax Jacobian
        at the logits z instead of at a gives (6.125, 2.625). With
        gs = gradserve.Client("127.0.0.1:50051"):

        >>> v = gs.verify([1.75, 1.75], target_probs=[0, 1], candidate=[6.125, 2.625])
        >>> v.candidate_ok, v.findings[0].code, v.analytic_grad
        (False, 'JACOBIAN_AT_LOGITS', array([ 0.5, -0.5]))

        `v.findings[0].message` explains it with these numbers, `.mistaken_grad` is what the
        mistake gives here, `v.worst` indexes the largest error and `v.summary` is the verdict
        in one paragraph.

        Returns:
            VerifyResult: ok, candidate_ok, candidate_jacobian_ok, analytic_grad, numeric_grad,
            max_abs_error, max_rel_error, candidate_max_abs_error, worst, epsilon_used, summary,
            findings (each: code, message, mistaken_grad, residual).
        """
        call = _ops.verify(logits, labels, target_probs, candidate, candidate_jacobian, rtol, atol,
                           numeric, epsilon, weights, label_smoothing, ignore_index, reduction)
        return call.single(self._unary(self._stub.VerifyGradient, call.make(call.chunks[0])))

    def health(self, service: str = "") -> str:
        """The server's health status name, e.g. "SERVING" ("" asks about the whole server)."""
        response = self._unary(self._stub.HealthCheck, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
