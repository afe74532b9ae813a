"""gradserve.aio.Client: gradserve.Client's methods as coroutines (grpc.aio), for notebooks and
async services. Arguments, results and errors are those of gradserve.Client.

    async with gradserve.aio.Client("127.0.0.1:50051") as gs:
        r = await gs.backward(logits, labels=labels)
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Optional, Sequence, Union

import grpc
import grpc.aio

from gradserve import _channel, _ops
from gradserve._proto.grpc.health.v1 import health_pb2
from gradserve._results import BackwardResult, ForwardResult, VerifyResult
from gradserve.client import (DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PIPELINE_BYTES, FORWARD_PIPELINE,
                              ArrayLike)
from gradserve.client import Client as _SyncClient
from gradserve.errors import from_rpc_error


class Client:
    __doc__ = (_SyncClient.__doc__ or "").replace("with gradserve.Client", "async with gradserve.aio.Client")

    def __init__(self, target: str = "127.0.0.1:50051", token: Optional[str] = None,
                 root_certificates: Union[bytes, str, bool, None] = None,
                 timeout: Optional[float] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 pipeline_bytes: int = DEFAULT_PIPELINE_BYTES) -> None:
        _channel.connect(self, grpc.aio, target, token, root_certificates, timeout,
                         max_message_bytes, pipeline_bytes)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method, request):
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def backward(self, logits: ArrayLike, labels: Optional[ArrayLike] = None,
                       target_probs: Optional[ArrayLike] = None,
                       grad_probs: Optional[ArrayLike] = None,
                       weights: Optional[Sequence[float]] = None, label_smoothing: float = 0.0,
                       ignore_index: Optional[int] = None, reduction: str = "mean",
                       method: str = "fused", grad_loss: Optional[ArrayLike] = None,
                       return_probs: bool = False, return_jacobian: bool = False) -> BackwardResult:
        call = _ops.backward(self._limits, logits, labels, target_probs, grad_probs,
                             weights, label_smoothing, ignore_index, reduction, method, grad_loss,
                             return_probs, return_jacobian)
        if call.assembly is None:
            return call.single(await self._unary(self._stub.Backward, call.make(call.chunks[0])))
        stream = self._stub.BackwardStream(call.requests(), timeout=self.timeout,
                                           metadata=self._metadata)
        try:
            async for response in stream:
                call.assembly.add(response)
        except grpc.RpcError as e:
            raise from_rpc_error(e, call.where(call.assembly.done)) from None
        return call.finish()

    async def forward(self, logits: ArrayLike, labels: Optional[ArrayLike] = None,
                      target_probs: Optional[ArrayLike] = None, log_probs: bool = False,
                      weights: Optional[Sequence[float]] = None, label_smoothing: float = 0.0,
                      ignore_index: Optional[int] = None, reduction: str = "mean") -> ForwardResult:
        call = _ops.forward(self._limits, logits, labels, target_probs, log_probs,
                            weights, label_smoothing, ignore_index, reduction)
        if call.assembly is None:
            return call.single(await self._unary(self._stub.Forward, call.make(call.chunks[0])))
        pending: collections.deque = collections.deque()
        try:
            for request in call.requests():
                if len(pending) == FORWARD_PIPELINE:
                    call.assembly.add(await pending.popleft())
                pending.append(asyncio.ensure_future(self._stub.Forward(
                    request, timeout=self.timeout, metadata=self._metadata)))
            while pending:
                call.assembly.add(await pending.popleft())
        except grpc.RpcError as e:
            for f in pending:
                f.cancel()
            raise from_rpc_error(e, call.where(call.assembly.done)) from None
        return call.finish()

    async def verify(self, logits: ArrayLike, labels: Optional[ArrayLike] = None,
                     target_probs: Optional[ArrayLike] = None,
                     candidate: Optional[ArrayLike] = None,
                     candidate_jacobian: Optional[ArrayLike] = None, rtol: float = 1e-5,
                     atol: float = 1e-8, numeric: str = "complex-step",
                     epsilon: Optional[float] = None, weights: Optional[Sequence[float]] = None,
                     label_smoothing: float = 0.0, ignore_index: Optional[int] = None,
                     reduction: str = "mean") -> VerifyResult:
        call = _ops.verify(logits, labels, target_probs, candidate, candidate_jacobian, rtol, atol,
                           numeric, epsilon, weights, label_smoothing, ignore_index, reduction)
        return call.single(await self._unary(self._stub.VerifyGradient, call.make(call.chunks[0])))

    async def health(self, service: str = "") -> str:
        response = await self._unary(self._stub.HealthCheck, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


for _name in ("backward", "forward", "verify", "health"):
    getattr(Client, _name).__doc__ = (
        f"Coroutine version of gradserve.Client.{_name}: `await gs.{_name}(...)`.\n\n"
        + (getattr(_SyncClient, _name).__doc__ or ""))
