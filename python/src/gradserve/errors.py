"""Errors raised by gradserve: one class per gRPC status a caller may want to handle.

Every error is a `gradserve.Error` carrying `.code` (the gRPC status code name, e.g.
"INVALID_ARGUMENT") and `.details` (the server's message, which names the field and the numbers).
Mistakes the package can see before sending anything (a wrong option name, labels of the wrong
shape) raise the same classes, with the same codes, without a call.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import grpc


class Error(Exception):
    """A failed gradserve call: `.code` is the gRPC status code name, `.details` the message."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class InvalidArgument(Error, ValueError):
    """Bad input (shape, dtype, option, label out of range, non-finite logits, ...)."""


class ResourceExhausted(Error):
    """A request or response over a server limit, or the server busy; details name the flag."""


class Unauthenticated(Error):
    """The server requires a token (`Client(token=...)`) and the call had none or a wrong one."""


class Unavailable(Error):
    """No server could be reached, after gRPC's retries with backoff."""


class DeadlineExceeded(Error):
    """The call did not finish within the client's `timeout`."""


_BY_CODE: Dict[str, Type[Error]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "UNAUTHENTICATED": Unauthenticated,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
}


def make_error(code: str, details: str) -> Error:
    """The Error subclass for a status code name (the base class for codes without one)."""
    return _BY_CODE.get(code, Error)(code, details)


def invalid(details: str) -> InvalidArgument:
    """A client-side InvalidArgument (nothing was sent)."""
    return InvalidArgument("INVALID_ARGUMENT", details)


def from_rpc_error(e: grpc.RpcError, context: Optional[str] = None) -> Error:
    """Converts a grpc.RpcError (sync or aio) to the matching gradserve.Error."""
    code_fn = getattr(e, "code", None)
    code = code_fn() if callable(code_fn) else None
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    details_fn = getattr(e, "details", None)
    details = (details_fn() if callable(details_fn) else None) or str(e)
    if context:
        details = f"{details} ({context})"
    return make_error(name, details)
