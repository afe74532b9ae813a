# Sourced by deploy/check.sh (uses its check, section, fail, $work, $image, $client, $prefix):
# runs the Deployment's pod spec for real with `podman kube play` (one replica, the local image,
# its args, security context and ports as written; host ports chosen free) and calls gRPC and
# HTTP on it, then scrapes /metrics. podman's default kube network does not exist on these
# machines, so the pod gets slirp4netns networking.

kube_free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

section "the Deployment's pod spec run by podman kube play"
kube_grpc=$(kube_free_port) kube_http=$(kube_free_port)
kube_yaml="$work/kube-play.yaml"
# One replica, the image built above, each containerPort published on a free host port.
sed -e 's/^  replicas: [0-9]*/  replicas: 1/' -e "s|^\( *image: \)gradserve:latest|\1$image|" \
    -e "s|^\( *\)containerPort: 50051|&\n\1hostPort: $kube_grpc|" \
    -e "s|^\( *\)containerPort: 8080|&\n\1hostPort: $kube_http|" \
    -e "s/^  name: gradserve$/  name: $prefix-kube/" deploy/k8s/deployment.yaml >"$kube_yaml"
kube_down() { podman kube down "$kube_yaml" >/dev/null 2>&1; }
kube_play() {
  podman kube play --network=slirp4netns "$kube_yaml" || return 1
  for _ in $(seq 100); do
    "$client" --target="127.0.0.1:$kube_grpc" --timeout=2 health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  podman ps -a --format '{{.Names}}' | grep "^$prefix-kube" | xargs -r -n 1 podman logs 2>&1 | tail -n 20
  return 1
}
if check "podman kube play --network=slirp4netns (gRPC on host port $kube_grpc, HTTP on $kube_http)" kube_play; then
  # podman 4.3 names the Deployment's pod NAME-pod-0 and its container NAME-pod-0-CONTAINER.
  kube_container=$(podman ps --format '{{.Names}}' | grep -E "^$prefix-kube-pod(-[0-9]+)?-gradserve$" | head -n 1)
  kube_security() {
    local pid
    pid=$(podman inspect --format '{{.State.Pid}}' "$kube_container") || return 1
    grep -E '^Uid:[[:space:]]+10001[[:space:]]' "/proc/$pid/status" || return 1
    # Read-only root: writing anywhere but a mounted volume fails.
    ! podman exec "$kube_container" sh -c 'echo x > /probe' 2>/dev/null
  }
  check "pod runs as uid 10001 with a read-only root filesystem" kube_security
  check "gRPC on the pod: the motivating case is JACOBIAN_AT_LOGITS (exit 1)" \
    verify_motivating_case "$client" --target="127.0.0.1:$kube_grpc"
  kube_http_calls() {
    local body
    curl -fsS "http://127.0.0.1:$kube_http/healthz" || return 1
    body=$(curl -sS "http://127.0.0.1:$kube_http/v1/verify" -d '{"logits": {"shape": [2], "values": [1.75, 1.75]},
      "targets": {"probabilities": {"shape": [2], "values": [0, 1]}},
      "candidate_grad": {"shape": [2], "values": [6.125, 2.625]}}') || return 1
    echo "$body" | head -c 300
    echo
    grep -q '"code":"FINDING_CODE_JACOBIAN_AT_LOGITS"' <<<"$body" || return 1
    curl -fsS "http://127.0.0.1:$kube_http/" | grep -q '<title>gradserve'
  }
  check "HTTP on the pod: /healthz, POST /v1/verify (JACOBIAN_AT_LOGITS), the page" kube_http_calls
  kube_scrape() {
    curl -fsS "http://127.0.0.1:$kube_http/metrics" >"$work/kube-metrics.txt" || return 1
    grep -E '^gradserve_requests_total\{rpc="VerifyGradient",protocol="(grpc|http)",code="OK"\} 1$' \
      "$work/kube-metrics.txt" || return 1
    [ "$(grep -cE '^gradserve_requests_total\{rpc="VerifyGradient",protocol="(grpc|http)",code="OK"\} 1$' \
      "$work/kube-metrics.txt")" = 2 ] || return 1
    grep -E '^gradserve_build_info' "$work/kube-metrics.txt" || return 1
    if command -v promtool >/dev/null; then promtool check metrics <"$work/kube-metrics.txt"; fi
  }
  check "scrape /metrics: one VerifyGradient each over gRPC and HTTP counted, promtool clean" kube_scrape
fi
check "podman kube down" podman kube down "$kube_yaml"
