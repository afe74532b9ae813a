"""Responses read without copying their big tensors: numpy.frombuffer on the received bytes.

protobuf would copy each raw payload twice (into the parsed message, then out of it as bytes).
Here the top-level fields are walked with protobuf's own varint reader; a Tensor field whose
encoding is big is parsed by protobuf without its `raw` (shape, dtype), and its `raw` is read in
place; everything else goes through protobuf untouched. The arrays are read-only views of the
response (numpy.array(x) gives a writable copy).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
from google.protobuf.internal.decoder import _DecodeVarint  # protobuf's varint reader
from google.protobuf.internal.encoder import _VarintBytes  # protobuf's varint writer

from gradserve import _tensors as T
from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb

BIG = 1 << 16  # tensors at least this big on the wire are read in place
_LEN = 2  # wire type of length-delimited fields
_RAW = pb.Tensor.DESCRIPTOR.fields_by_name["raw"].number


def _fields(data: bytes, pos: int, end: int) -> Iterator[Tuple[int, int, int, int, int]]:
    """(number, wire type, start of the field, start of its value, end) for each field."""
    while pos < end:
        start = pos
        tag, pos = _DecodeVarint(data, pos)
        kind = tag & 7
        if kind == 0:
            _, stop = _DecodeVarint(data, pos)
        elif kind == 1:
            stop = pos + 8
        elif kind == _LEN:
            size, pos = _DecodeVarint(data, pos)
            stop = pos + size
        elif kind == 5:
            stop = pos + 4
        else:
            raise ValueError(f"unsupported wire type {kind} at byte {start}")
        if stop > end:
            raise ValueError(f"field at byte {start} runs past the end of the message")
        yield tag >> 3, kind, start, pos, stop
        pos = stop


class Incoming:
    """A parsed response plus where its big tensors' raw bytes are in the received buffer."""

    def __init__(self, cls: Any, data: bytes) -> None:
        self.data = data
        self.spans: Dict[str, Tuple[int, int]] = {}
        by_number = cls.DESCRIPTOR.fields_by_number
        parts = []
        for number, kind, start, value, stop in _fields(data, 0, len(data)):
            field = by_number.get(number)
            big_tensor = (field is not None and kind == _LEN and stop - value >= BIG
                          and field.message_type is pb.Tensor.DESCRIPTOR)
            if not big_tensor:
                parts.append(data[start:stop])
                continue
            inner = []
            for n, _, s, v, e in _fields(data, value, stop):
                if n == _RAW:
                    self.spans[field.name] = (v, e)
                else:
                    inner.append(data[s:e])
            small = b"".join(inner)
            parts.append(_VarintBytes(number << 3 | _LEN) + _VarintBytes(len(small)) + small)
        self.message = cls.FromString(b"".join(parts))

    def tensor(self, name: str) -> Optional[np.ndarray]:
        """Field `name` as a numpy array (None when absent), as _tensors.decode reads it."""
        if name not in self.message.DESCRIPTOR.fields_by_name or not self.message.HasField(name):
            return None
        t = getattr(self.message, name)
        if name not in self.spans:
            return T.decode(t)
        start, stop = self.spans[name]
        raw = T._RAW.get(t.dtype)
        if raw is None:
            raise ValueError(f"response tensor {name} has dtype {t.dtype}, unknown to this package")
        a = np.frombuffer(self.data, dtype=raw, count=(stop - start) // raw.itemsize, offset=start)
        if t.dtype == T.BFLOAT16:
            a = T.from_bfloat16(a)
        return a.reshape(tuple(t.shape))


def reader(cls: Any):
    """A response_deserializer giving Incoming objects of message class `cls`."""
    return lambda data: Incoming(cls, data)
