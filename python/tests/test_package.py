"""The package itself: generated stubs that clash with nothing, conversions, and chunk sizes."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from google.protobuf import descriptor_pb2, descriptor_pool

import gradserve
from conftest import ROOT
from gradserve import _ops, _tensors
from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb


def test_stubs_are_generated_from_the_repository_proto():
    proto = (ROOT / "proto" / "gradserve" / "v1" / "gradserve.proto").read_text()
    messages = re.findall(r"^message (\w+)", proto, re.M)
    enums = re.findall(r"^\s+(\w+) = \d+;", proto, re.M)
    assert len(messages) > 10
    for name in messages:
        assert pb.DESCRIPTOR.message_types_by_name[name].full_name == f"gradserve.v1.{name}"
    enum_values = {v.name for e in pb.DESCRIPTOR.enum_types_by_name.values() for v in e.values}
    assert {e for e in enums if e.isupper()} <= enum_values


def test_stubs_shadow_and_clash_with_nothing():
    assert gradserve._proto.gradserve.v1.gradserve_pb2.__name__.startswith("gradserve._proto.")
    assert not [m for m in sys.modules if m.startswith(("gradserve.v1", "grpc.health"))]
    # Another gradserve.proto (say, a user's older stubs) still loads into protobuf's default pool.
    other = descriptor_pb2.FileDescriptorProto(name="gradserve/v1/gradserve.proto",
                                               package="gradserve.v1", syntax="proto3")
    other.message_type.add(name="Tensor").field.add(
        name="only_field", number=9, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    descriptor_pool.Default().Add(other)
    assert pb.Tensor(raw=b"x").SerializeToString() == b"\x1a\x01x"


def test_bfloat16_rounding_matches_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 100, 10000), [0.0, -0.0, 1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8,
                                                     3.4e38, -1e-40, np.inf, -np.inf]]).astype(np.float32)
    ours = _tensors.to_bfloat16(x)
    theirs = torch.tensor(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(_tensors.from_bfloat16(ours),
                                  torch.tensor(x).to(torch.bfloat16).float().numpy())


def test_dtype_rules():
    assert _tensors.as_wire(np.zeros(2, np.float32), "x")[1] == pb.DATA_TYPE_FLOAT32
    assert _tensors.as_wire(np.zeros(2, np.float16), "x")[1] == pb.DATA_TYPE_FLOAT16
    assert _tensors.as_wire([1, 2], "x")[1] == pb.DATA_TYPE_FLOAT64
    bits, wire = _tensors.as_wire(torch.tensor([1.0, -2.0], dtype=torch.bfloat16), "x")
    assert wire == pb.DATA_TYPE_BFLOAT16 and bits.tolist() == [0x3F80, 0xC000]


@pytest.mark.parametrize("kind", ["labels", "target_probs", "jacobian"])
def test_chunks_fit_the_limit(kind):
    limit = 1 << 20
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5000, 64))
    kw = {"labels": np.full(5000, -100), "ignore_index": -100}  # 10-byte varints
    if kind == "target_probs":
        kw = {"target_probs": np.full(z.shape, 1 / 64)}
    call = _ops.backward((limit, 0), z, kw.get("labels"), kw.get("target_probs"), None, None, 0.0,
                         kw.get("ignore_index"), "none", "chain-rule", np.ones(5000), True,
                         kind == "jacobian")
    assert len(call.chunks) > 2
    assert sum(c.stop - c.start for c in call.chunks) == 5000
    for request in call.requests():
        assert request.ByteSize() <= limit
        rows = request.message.logits.shape[0]
        response = 8 * rows * 64 * (3 + 64 * (kind == "jacobian")) + 8 * rows
        assert response <= limit


def test_package_exports_the_documented_names():
    for name in ("Client", "Error", "InvalidArgument", "ResourceExhausted", "Unauthenticated",
                 "Unavailable", "DeadlineExceeded"):
        assert hasattr(gradserve, name)
    assert issubclass(gradserve.InvalidArgument, ValueError)
    assert callable(gradserve.aio.Client.backward)


def test_outgoing_payloads_parse_as_one_message():
    """Big payloads appended by Outgoing.serialize() parse into the tensors they belong to."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(600, 70))
    p = np.full(z.shape, 1 / 70, dtype=np.float32)
    g = rng.normal(size=z.shape).astype(np.float16)
    out = _tensors.Outgoing(pb.BackwardRequest(method=pb.METHOD_CHAIN_RULE))
    out.encode("logits", z, pb.DATA_TYPE_FLOAT64, z.shape)
    out.encode("targets.probabilities", p, pb.DATA_TYPE_FLOAT32, p.shape)
    out.encode("grad_probabilities", g, pb.DATA_TYPE_FLOAT16, g.shape)
    out.encode("grad_loss", np.ones(3), pb.DATA_TYPE_FLOAT64, [3])  # small: set in place
    assert len(out.payloads) == 3
    parsed = pb.BackwardRequest.FromString(out.serialize())
    expected = pb.BackwardRequest(method=pb.METHOD_CHAIN_RULE)
    for t, a, wire in ((expected.logits, z, pb.DATA_TYPE_FLOAT64),
                       (expected.targets.probabilities, p, pb.DATA_TYPE_FLOAT32),
                       (expected.grad_probabilities, g, pb.DATA_TYPE_FLOAT16)):
        t.shape[:] = a.shape
        t.dtype = wire
        t.raw = a.tobytes()
    expected.grad_loss.shape[:] = [3]
    expected.grad_loss.dtype = pb.DATA_TYPE_FLOAT64
    expected.grad_loss.raw = np.ones(3).tobytes()
    assert parsed == expected
    # Only the extra tag and length of each appended occurrence differ.
    assert 0 < out.ByteSize() - expected.ByteSize() <= 16 * len(out.payloads)


@pytest.mark.parametrize("dtype", [pb.DATA_TYPE_FLOAT32, pb.DATA_TYPE_FLOAT64, pb.DATA_TYPE_FLOAT16,
                                   pb.DATA_TYPE_BFLOAT16])
def test_incoming_reads_big_tensors_in_place(dtype):
    """Incoming gives what protobuf's own parse gives, big raw payloads read without copies."""
    from gradserve._incoming import Incoming

    rng = np.random.default_rng(3)
    item = {pb.DATA_TYPE_FLOAT32: 4, pb.DATA_TYPE_FLOAT64: 8}.get(dtype, 2)
    r = pb.BackwardResponse(reduction_denominator=17.5)
    for name, shape in (("grad_logits", (200, 300)), ("probabilities", (200, 300)),
                        ("jacobian", (2, 30, 30)), ("loss", (200,))):
        t = getattr(r, name)
        t.shape[:] = shape
        t.dtype = dtype
        t.raw = rng.integers(0, 0x3C00, int(np.prod(shape)) * item // 2, dtype=np.uint16).tobytes()
    r.grad_probabilities.shape[:] = [2]
    r.grad_probabilities.values[:] = [1.5, -2.0]
    data = r.SerializeToString()
    incoming = Incoming(pb.BackwardResponse, data)
    assert set(incoming.spans) == {"grad_logits", "probabilities"}  # the others are small
    assert incoming.message.reduction_denominator == 17.5
    for name in ("grad_logits", "probabilities", "jacobian", "loss", "grad_probabilities"):
        ours, theirs = incoming.tensor(name), _tensors.decode(getattr(r, name))
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
    assert incoming.tensor("grad_logits").base is not None  # a view, not a copy
    assert pb.BackwardResponse.FromString(data) == r
    assert Incoming(pb.BackwardResponse, b"").tensor("grad_logits") is None


@pytest.mark.parametrize("pipeline", [0, 256 << 10, 2 << 20])
def test_pipeline_chunks_are_about_pipeline_bytes(pipeline):
    z = np.zeros((4096, 1000), dtype=np.float32)  # 16 MB
    call = _ops.backward((64 << 20, pipeline), z, np.zeros(4096, int), None, None, None, 0.0,
                         None, "mean", "fused", None, False, False)
    if pipeline == 0:
        assert len(call.chunks) == 1
        return
    sizes = [len(r.serialize()) for r in call.requests()]
    assert max(sizes) <= pipeline and min(sizes[:-1]) > pipeline * 0.9
