"""Channel settings shared by the sync and asyncio clients.

- round_robin over every address of a `dns:///host:port` or `ipv4:a:p,b:p` target;
- UNAVAILABLE retried with exponential backoff by gRPC itself (the retry policy of the service
  config), with a retry buffer large enough that big calls are retried too;
- no receive limit, so a response the server may send (up to 4 × its message limit, its transport
  setting) is never refused by the client; nor a send limit: the server answers an oversized
  request with RESOURCE_EXHAUSTED naming its size, the limit and the flag.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, List, Optional, Tuple

import grpc

from gradserve._incoming import reader
from gradserve._proto.gradserve.v1 import gradserve_pb2 as pb
from gradserve._proto.grpc.health.v1 import health_pb2

SERVICE = "gradserve.v1.GradientService"
HEALTH = "grpc.health.v1.Health"

RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{"name": [{"service": SERVICE}, {"service": HEALTH}],
                      "retryPolicy": RETRY_POLICY}],
})


def options(max_message_bytes: int) -> List[Tuple[str, object]]:
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.per_rpc_retry_buffer_size", int(min(max_message_bytes + (1 << 20), 2**31 - 1))),
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
    ]


def credentials(root_certificates: Optional[bytes]) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials when root certificates are given (True: the system's roots), else None."""
    if root_certificates is None or root_certificates is False:
        return None
    if root_certificates is True:
        return grpc.ssl_channel_credentials()
    if isinstance(root_certificates, str):
        root_certificates = root_certificates.encode()
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def metadata(token: Optional[str]) -> Optional[Tuple[Tuple[str, str], ...]]:
    return (("authorization", f"Bearer {token}"),) if token else None


def _serialize(outgoing: Any) -> bytes:
    return outgoing.serialize()


def methods(channel: Any) -> SimpleNamespace:
    """The RPCs as callables on `channel` (sync or aio), taking gradserve._tensors.Outgoing requests.

    Paths and response types come from the generated descriptors; requests are serialized by
    Outgoing (big payloads copied once), responses read by _incoming.Incoming (big tensors in place).
    """
    service = pb.DESCRIPTOR.services_by_name["GradientService"]
    found = {}
    for m in service.methods:
        path = f"/{service.full_name}/{m.name}"
        parse = reader(getattr(pb, m.output_type.name))
        make = channel.stream_stream if m.client_streaming else channel.unary_unary
        found[m.name] = make(path, request_serializer=_serialize, response_deserializer=parse)
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    found["HealthCheck"] = channel.unary_unary(
        f"/{health.full_name}/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return SimpleNamespace(**found)


def connect(client: Any, grpc_module: Any, target: str, token: Optional[str],
            root_certificates: Any, timeout: Optional[float], max_message_bytes: int,
            pipeline_bytes: int) -> None:
    """Sets up `client` (sync or asyncio: `grpc_module` is grpc or grpc.aio) on a new channel."""
    client.target = target
    client.timeout = timeout
    client.max_message_bytes = int(max_message_bytes)
    client.pipeline_bytes = int(pipeline_bytes)
    client._limits = (client.max_message_bytes, client.pipeline_bytes)
    client._metadata = metadata(token)
    creds = credentials(root_certificates)
    opts = options(client.max_message_bytes)
    client._channel = (grpc_module.secure_channel(target, creds, opts) if creds
                       else grpc_module.insecure_channel(target, opts))
    client._stub = methods(client._channel)
