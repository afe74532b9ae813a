"""numpy <-> gradserve.v1.Tensor: dtypes, little-endian raw bytes, torch tensors and bfloat16.

Inputs: anything numpy.asarray accepts, CPU torch tensors included (detached first, so tensors
that require grad work). float32, float64 and float16 keep their dtype; a torch bfloat16 tensor is
sent as BFLOAT16 (its bits, viewed as int16); every other input becomes float64.
Outputs: numpy arrays made with numpy.frombuffer on the response's bytes (no further copy; they
are read-only: numpy.array(x) gives a writable copy). BFLOAT16 outputs come back as float32,
since numpy has no bfloat16; the conversion is exact.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import numpy as np
from google.protobuf.internal.encoder import _VarintBytes  # protobuf's varint writer

from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb
from gradserve.errors import invalid

FLOAT32 = pb.DATA_TYPE_FLOAT32
FLOAT64 = pb.DATA_TYPE_FLOAT64
FLOAT16 = pb.DATA_TYPE_FLOAT16
BFLOAT16 = pb.DATA_TYPE_BFLOAT16

# Wire dtype -> the little-endian numpy dtype of its raw bytes (bfloat16: its 16 bits).
_RAW = {FLOAT32: np.dtype("<f4"), FLOAT64: np.dtype("<f8"), FLOAT16: np.dtype("<f2"),
        BFLOAT16: np.dtype("<u2")}
_BY_NUMPY = {np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64,
             np.dtype(np.float16): FLOAT16}


def itemsize(wire: int) -> int:
    return _RAW[wire].itemsize


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".", 1)[0] == "torch" and hasattr(x, "detach")


def as_wire(x: Any, name: str, wire: int = 0) -> Tuple[np.ndarray, int]:
    """(array of the raw payload's dtype, wire dtype) for input `x`.

    With wire=0 the dtype follows the input (see the module's docstring); otherwise `x` is
    converted to `wire` (round to nearest even for the half types).
    """
    if _is_torch(x):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if str(x.dtype) == "torch.bfloat16":
            import torch  # only reached with a torch tensor in hand

            bits = x.contiguous().view(torch.int16).numpy().view(np.uint16)
            if wire in (0, BFLOAT16):
                return bits, BFLOAT16
            x = from_bfloat16(bits)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise invalid(f"{name}: cannot be read as an array of numbers ({e})") from None
    if a.dtype.kind not in "biuf":
        raise invalid(f"{name}: expected real numbers, got an array of dtype {a.dtype}")
    if wire == 0:
        wire = _BY_NUMPY.get(a.dtype, FLOAT64)
    if wire == BFLOAT16:
        return to_bfloat16(a), BFLOAT16
    return np.asarray(a, dtype=_RAW[wire], order="C"), wire


def to_bfloat16(a: np.ndarray) -> np.ndarray:
    """float array -> bfloat16 bits (uint16), rounded to nearest even; NaN stays NaN."""
    bits = np.asarray(a, dtype="<f4", order="C").view("<u4")
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(a)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32, exactly."""
    return (bits.astype("<u4") << 16).view("<f4")


# Payloads at least this big are not copied into the message but appended when serializing.
DEFER_BYTES = 1 << 16


class Outgoing:
    """A request message plus big raw payloads that go straight from their arrays to the wire.

    protobuf would copy a payload three times (tobytes, into the message, out when serializing);
    here it is copied once, into the serialized request. Each payload is appended as another
    occurrence of its Tensor field holding only `raw`, which protobuf parsers merge into the
    Tensor already in the message (the encoding's rule for repeated singular message fields).
    """

    def __init__(self, message: Any) -> None:
        self.message = message
        self.payloads: List[Tuple[Tuple[int, ...], np.ndarray]] = []

    def encode(self, field: str, a: np.ndarray, wire: int, shape: Sequence[int]) -> None:
        """Sets Tensor `field` ("logits", "targets.probabilities", ...) to array `a` of `shape`."""
        t, numbers, descriptor = self.message, [], self.message.DESCRIPTOR
        for name in field.split("."):
            f = descriptor.fields_by_name[name]
            numbers.append(f.number)
            t, descriptor = getattr(t, name), f.message_type
        t.shape[:] = shape
        t.dtype = wire
        if a.nbytes >= DEFER_BYTES:
            numbers.append(descriptor.fields_by_name["raw"].number)
            self.payloads.append((tuple(numbers), a))
        else:
            t.raw = a.tobytes()

    def ByteSize(self) -> int:
        return len(self.serialize())

    def serialize(self) -> bytes:
        parts = [self.message.SerializeToString()]
        for numbers, a in self.payloads:
            data = memoryview(a).cast("B")
            frames, size = [], a.nbytes
            for number in reversed(numbers):  # innermost (raw) first
                head = _VarintBytes(number << 3 | 2) + _VarintBytes(size)
                frames.append(head)
                size += len(head)
            parts.extend(reversed(frames))
            parts.append(data)
        return b"".join(parts)


def decode(t: pb.Tensor) -> np.ndarray:
    """The numpy array a response Tensor holds (bfloat16 widened to float32)."""
    shape = tuple(t.shape)
    if t.raw:
        raw = _RAW.get(t.dtype)
        if raw is None:
            raise invalid(f"response tensor has dtype {t.dtype}, which this package cannot read")
        a = np.frombuffer(t.raw, dtype=raw)
        if t.dtype == BFLOAT16:
            a = from_bfloat16(a)
        return a.reshape(shape)
    dtype = np.float32 if t.dtype in (FLOAT32, FLOAT16, BFLOAT16) else np.float64
    if len(t.values):
        return np.array(t.values, dtype=dtype).reshape(shape)
    return np.zeros(shape, dtype=dtype)


def out_dtype(wire: int) -> np.dtype:
    """The numpy dtype outputs of a request in `wire` dtype come back as."""
    return np.dtype(np.float32) if wire == BFLOAT16 else _RAW[wire].newbyteorder("=")
