"""Each error class, from the real server where it can say so; UNAVAILABLE retries from a stand-in.

The retry tests use a grpcio server in this process that answers Health/Check UNAVAILABLE a given
number of times: the real server cannot be made to fail on demand, and counting attempts shows
that gRPC's retry policy (not a loop in the package) is what retries.
"""

from __future__ import annotations

import subprocess
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

import gradserve
from conftest import ServerProcess
from gradserve._proto.grpc.health.v1 import health_pb2


def test_invalid_argument_from_the_server(gs):
    with pytest.raises(gradserve.InvalidArgument) as e:
        gs.backward([[1.0, 2.0, 3.0]], labels=[7])
    assert isinstance(e.value, ValueError) and isinstance(e.value, gradserve.Error)
    assert e.value.code == "INVALID_ARGUMENT"
    assert "7" in e.value.details and "[0, 3)" in e.value.details
    with pytest.raises(gradserve.InvalidArgument, match="logits"):
        gs.backward([[1.0, float("nan")]], labels=[0])


@pytest.mark.parametrize("call, match", [
    (lambda gs: gs.backward([[1.0, 2.0]], labels=[0], reduction="avg"), "reduction must be one of"),
    (lambda gs: gs.backward([[1.0, 2.0]], labels=[0], method="autograd"), "method must be one of"),
    (lambda gs: gs.verify([[1.0, 2.0]], labels=[0], numeric="forward"), "numeric must be one of"),
    (lambda gs: gs.backward(np.zeros((2, 3)), labels=[0, 1, 2]), r"labels has shape \[3\]"),
    (lambda gs: gs.backward(np.zeros((2, 3)), labels=[0.0, 1.0]), "integer class indices"),
    (lambda gs: gs.backward(np.zeros((2, 3)), labels=[0, 1], target_probs=np.ones((2, 3)) / 3),
     "exactly one of"),
    (lambda gs: gs.backward(np.zeros((2, 3)), labels=[0, 1], weights=[1, 2]), "3 classes"),
    (lambda gs: gs.backward(np.zeros((2, 3)), grad_probs=np.ones((2, 3)), weights=[1, 2, 3]),
     "do not go with grad_probs"),
    (lambda gs: gs.backward(np.zeros((2, 3)), target_probs=np.ones((3, 2))), "must match logits"),
    (lambda gs: gs.backward(np.zeros((2, 3)), labels=[0, 1], reduction="none", grad_loss=1.0),
     r"must have shape \[2\]"),
    (lambda gs: gs.backward(1.0, labels=0), "scalar"),
    (lambda gs: gs.backward([["a", "b"]], labels=[0]), "real numbers"),
])
def test_invalid_argument_before_sending(call, match):
    # No server at this address: the mistake is found before any call.
    with gradserve.Client("127.0.0.1:1", timeout=5) as gs:
        with pytest.raises(gradserve.InvalidArgument, match=match) as e:
            call(gs)
    assert e.value.code == "INVALID_ARGUMENT"


def test_resource_exhausted_names_the_limit(small_gs):
    with pytest.raises(gradserve.ResourceExhausted, match="max_message_mib") as e:
        small_gs.backward(np.zeros((1, 500)), labels=[0], return_jacobian=True)  # 2 MB Jacobian
    assert e.value.code == "RESOURCE_EXHAUSTED"


def test_unauthenticated_without_the_token(tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    s = ServerProcess(f"--token_file={tmp_path / 'token'}")
    try:
        with gradserve.Client(s.address) as anonymous:
            assert anonymous.health() == "SERVING"  # health stays open
            with pytest.raises(gradserve.Unauthenticated) as e:
                anonymous.backward([[1.0, 2.0]], labels=[0])
        assert e.value.code == "UNAUTHENTICATED" and "Bearer" in e.value.details
        with gradserve.Client(s.address, token="wrong") as wrong:
            with pytest.raises(gradserve.Unauthenticated):
                wrong.forward([[1.0, 2.0]])
        with gradserve.Client(s.address, token="s3cret") as good:
            assert good.backward([[1.0, 1.0]], labels=[0]).grad_logits.tolist() == [[-0.5, 0.5]]
    finally:
        s.stop()


def test_deadline_exceeded(server):
    z = np.random.default_rng(0).normal(size=(1000, 1000))
    with gradserve.Client(server.address, timeout=1e-4) as hasty:
        with pytest.raises(gradserve.DeadlineExceeded) as e:
            hasty.verify(z, labels=np.zeros(1000, int))
    assert e.value.code == "DEADLINE_EXCEEDED"


class FlakyHealth:
    """A grpcio server whose Health/Check fails UNAVAILABLE `failures` times, then SERVING."""

    def __init__(self, failures: int) -> None:
        self.failures, self.attempts, self.lock = failures, 0, threading.Lock()
        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString)})
        self.server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def check(self, request, context):
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.failures:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"attempt {self.attempts} refused")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def test_unavailable_is_retried_by_grpc():
    flaky = FlakyHealth(failures=3)
    try:
        with gradserve.Client(f"127.0.0.1:{flaky.port}", timeout=30) as gs:
            assert gs.health() == "SERVING"
        assert flaky.attempts == 4
    finally:
        flaky.server.stop(None)


def test_unavailable_after_the_retries():
    flaky = FlakyHealth(failures=100)
    try:
        with gradserve.Client(f"127.0.0.1:{flaky.port}", timeout=30) as gs:
            with pytest.raises(gradserve.Unavailable) as e:
                gs.health()
        assert e.value.code == "UNAVAILABLE" and "refused" in e.value.details
        assert flaky.attempts == 5  # the retry policy's maxAttempts
    finally:
        flaky.server.stop(None)


def test_tls_with_root_certificates(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    s = ServerProcess(f"--tls_cert={cert}", f"--tls_key={key}")
    try:
        with gradserve.Client(s.address, root_certificates=cert.read_bytes(), timeout=30) as gs:
            r = gs.backward([[1.0, 1.0]], labels=[1])
            assert r.grad_logits.tolist() == [[0.5, -0.5]]
        with gradserve.Client(s.address, timeout=5) as plaintext:  # no TLS: cannot connect
            with pytest.raises(gradserve.Unavailable):
                plaintext.health()
    finally:
        s.stop()
