#!/usr/bin/env bash
# Checks the container image and the deployment manifests for real, on this machine:
# builds the image with podman (making the debian base images locally when missing, since no
# registry is reachable), runs it with the Kubernetes Deployment's own arguments and hardening,
# runs replicas on loopback and drives them from the host's gradserve client, stops them with
# SIGTERM, validates deploy/k8s and deploy/compose.yaml offline and lints the Dockerfile.
#
#   deploy/check.sh        as root on Debian 12 (CI runs it from .ci/run); idempotent
#
# Ends with "N passed, N failed"; exits 1 if any check failed. Base image trees, containers.conf
# and npm modules live in $GRADSERVE_DEPLOY_CACHE (default ~/.cache/gradserve-deploy), outside
# the repository. Containers it starts are named gradserve-check-<pid>-* and removed on exit.
# shellcheck disable=SC2317  # functions here run through check(), which shellcheck cannot follow
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

image=localhost/gradserve:latest # the name deploy/compose.yaml runs
cache=${GRADSERVE_DEPLOY_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/gradserve-deploy}
build_dir=${BUILD_DIR:-build}
client=$build_dir/client/gradserve
prefix=gradserve-check-$$
work=$(mktemp -d)
passed=0
failed=0
t_start=$SECONDS

# --- reporting --------------------------------------------------------------------------------

section() { printf '\n== %s\n' "$*"; }
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$1"; }
# fail NAME [DETAIL_FILE]: counts a failure and shows what the check saw.
fail() {
  failed=$((failed + 1))
  printf 'FAIL  %s\n' "$1"
  [ -n "${2:-}" ] && [ -s "$2" ] && tail -n 25 "$2" | sed 's/^/      | /'
  return 0
}
# check NAME CMD...: runs CMD with its output kept in a file, shown only if it fails; returns
# CMD's success, for checks that only make sense after another one passed.
check() {
  local name=$1
  last_out="$work/out.$((passed + failed))"
  shift
  if "$@" >"$last_out" 2>&1; then pass "$name"; else fail "$name" "$last_out" && return 1; fi
}
# detail PATTERN: shows the lines of the last check's output that match, as figures for the log.
detail() { grep -E "$1" "$last_out" | sed 's/^/      /'; }
finish() {
  printf '\n%s passed, %s failed\n' "$passed" "$failed"
  [ "$failed" -eq 0 ]
  exit $?
}

cleanup() {
  local ids
  mapfile -t ids < <(podman ps -aq --filter "name=^$prefix-" 2>/dev/null)
  ((${#ids[@]})) && podman rm -f -t 0 "${ids[@]}" >/dev/null 2>&1
  podman network exists "${prefix}-compose_default" 2>/dev/null && podman network rm -f "${prefix}-compose_default" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# --- prerequisites: packages, containers.conf, base images, host client, npm modules ----------

. deploy/check_prerequisites.sh
exec 9>"$cache/lock"
flock -n 9 || { echo "another deploy/check.sh is running; waiting for it"; flock 9; }

section "prerequisites"
# slirp4netns: the network of `podman kube play` (kube_play_check.sh).
packages=(podman buildah runc conmon catatonit netavark aardvark-dns iptables uidmap debootstrap yamllint podman-compose
  slirp4netns)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
check "Debian packages: podman, podman-compose, debootstrap, yamllint, node present or installed" apt_install "${packages[@]}"
write_containers_conf
t0=$SECONDS
check "base images localhost/debian:bookworm and :bookworm-slim exist or were made" make_base_images
echo "      ($((SECONDS - t0)) s)"
if [ ! -x "$client" ]; then
  echo "no $client: building the host binaries with scripts/setup"
  scripts/setup >"$work/setup.log" 2>&1 || tail -n 30 "$work/setup.log"
fi
check "host client $client exists" test -x "$client"
check "npm packages of deploy/package-lock.json installed" npm_modules

# --- the image ---------------------------------------------------------------------------------

section "image"
t0=$SECONDS
# Docker's image format: OCI's has no HEALTHCHECK (podman drops it with a warning). Host
# networking for RUN steps: the apt mirror is reached as the host reaches it, with no bridge or
# firewall rules to set up.
if podman build --pull=never --format=docker --network=host -t "$image" -f Dockerfile . >"$work/build.log" 2>&1; then
  image_ok=1
  tests=$(awk '/^\[  PASSED  \] [0-9]+ tests?\./ {n += $4; p++} END {if (p) print n " tests of " p " programs passed"}' "$work/build.log")
  pass "podman build (library unit tests in the builder stage: ${tests:-passed when its cached layer was built})"
else
  image_ok=0
  fail "podman build" "$work/build.log"
fi
echo "      ($((SECONDS - t0)) s)"

if [ "$image_ok" = 1 ]; then
  size=$(podman image inspect --format '{{.Size}}' "$image")
  echo "      image size: $((size / 1000000)) MB"
  check "runtime image is under 200 MB ($((size / 1000000)) MB)" test "$size" -lt 200000000

  config() { podman image inspect --format "$1" "$image"; }
  check_config() {
    [ "$(config '{{.Config.User}}')" = "10001:10001" ] || { echo "User: $(config '{{.Config.User}}')"; return 1; }
    # shellcheck disable=SC2016  # a Go template, not shell
    config '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' | grep -qw '50051/tcp' || { echo "no EXPOSE 50051"; return 1; }
    config '{{json .Config.Entrypoint}}' | grep -q -- '--listen=0.0.0.0:50051' || { echo "Entrypoint: $(config '{{json .Config.Entrypoint}}')"; return 1; }
    config '{{json .Config.Healthcheck}}' | grep -q '"health"' || { echo "Healthcheck: $(config '{{json .Config.Healthcheck}}')"; return 1; }
  }
  check "image config: user 10001, EXPOSE 50051, listens on 0.0.0.0:50051, HEALTHCHECK gradserve health" check_config
  libraries_resolve() {
    local out
    out=$(podman run --rm --network=none --entrypoint /bin/sh "$image" -c \
      'ldd /usr/local/bin/gradserve-server /usr/local/bin/gradserve') || return 1
    echo "$out"
    ! grep -q 'not found' <<<"$out"
  }
  check "every shared library of both binaries is in the runtime image (ldd)" libraries_resolve
fi

# --- containers ----------------------------------------------------------------------------------

# wait_listening NAME: prints the port the server in container NAME reported, within 15 s.
wait_listening() {
  local port
  for _ in $(seq 150); do
    port=$(podman logs "$1" 2>/dev/null | sed -n 's/^gradserve-server listening on [^ ]*:\([0-9]*\).*/\1/p' | head -n 1)
    [ -n "$port" ] && { echo "$port"; return 0; }
    [ "$(podman inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || break
    sleep 0.1
  done
  podman logs "$1" >&2
  return 1
}

# stop_within NAME SECONDS: podman stop (SIGTERM, SIGKILL after SECONDS); passes if the server
# exited by itself with status 0 before that.
stop_within() {
  local t0 t1 code
  t0=$(date +%s%N)
  podman stop -t "$2" "$1" >/dev/null || return 1
  t1=$(date +%s%N)
  code=$(podman inspect --format '{{.State.ExitCode}}' "$1")
  echo "exit status $code after $(((t1 - t0) / 1000000)) ms"
  podman logs "$1" | tail -n 3
  [ "$code" = 0 ] && [ $(((t1 - t0) / 1000000)) -lt $(($2 * 1000)) ]
}

# verify_motivating_case CLIENT...: the motivating case must come back as a wrong gradient (exit 1)
# explained by JACOBIAN_AT_LOGITS.
verify_motivating_case() {
  local out code=0
  out=$("$@" verify --logits 1.75,1.75 --target-probs 0,1 --candidate 6.125,2.625 2>&1) || code=$?
  printf '%s\nexit status %s\n' "$out" "$code"
  [ "$code" = 1 ] && grep -q '^finding JACOBIAN_AT_LOGITS' <<<"$out"
}

# unauthenticated CLIENT...: a GradientService call without the token must fail with
# UNAUTHENTICATED (exit 3, an RPC failure).
unauthenticated() {
  local out code=0
  out=$("$@" verify --logits 1.75,1.75 --target-probs 0,1 --candidate 6.125,2.625 2>&1) || code=$?
  printf '%s\nexit status %s\n' "$out" "$code"
  [ "$code" = 2 ] && grep -q UNAUTHENTICATED <<<"$out"  # the caller's to fix: gradserve exits 2
}

# CPU time (ns) used so far by every thread of a container's processes, from its cgroup.
container_cpu_ns() {
  local pid
  pid=$(podman inspect --format '{{.State.Pid}}' "$1") || return 1
  # /proc/PID/cgroup names the container's cpuacct cgroup (v1) or its unified cgroup (v2).
  local v1 v2
  v1=$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ {print $3}' "/proc/$pid/cgroup")
  if [ -n "$v1" ] && [ -r "/sys/fs/cgroup/cpuacct$v1/cpuacct.usage" ]; then
    cat "/sys/fs/cgroup/cpuacct$v1/cpuacct.usage"
  else
    v2=$(awk -F: '$1 == 0 {print $3}' "/proc/$pid/cgroup")
    echo $(($(awk '$1 == "usage_usec" {print $2}' "/sys/fs/cgroup$v2/cpu.stat") * 1000))
  fi
}

if [ "$image_ok" = 1 ]; then
  section "the image run as the Kubernetes Deployment runs it (with the token component)"
  # The Deployment's own arguments, the token Secret mounted where the component mounts it,
  # read-only root, no capabilities, own network namespace: the probes and the HEALTHCHECK run
  # inside it, as the kubelet's and podman's would.
  if node deploy/validate.mjs run-args deploy/k8s --component token >"$work/run.env" 2>"$work/run.err"; then
    run_args=() token_dir='' token_key=''
    # shellcheck disable=SC1091  # sets those three
    . "$work/run.env"
    token=check-$RANDOM$RANDOM
    # Owned and moded as the kubelet lays out the Secret volume: group fsGroup, mode 0440.
    mkdir -p "$work/secret" && printf '%s\n' "$token" >"$work/secret/$token_key" &&
      chown 0:10001 "$work/secret/$token_key" && chmod 0440 "$work/secret/$token_key"
    pod=$prefix-pod
    # (podman logs that it cannot schedule the HEALTHCHECK without systemd; `podman healthcheck
    # run` below runs it.)
    podman run -d --name "$pod" --network=none --read-only --read-only-tmpfs=false --cap-drop=ALL \
      --security-opt=no-new-privileges -v "$work/secret:$token_dir:ro" "$image" "${run_args[@]}" \
      >"$work/run-pod.log" 2>&1 || cat "$work/run-pod.log"
    if check "server starts with the Deployment's args: ${run_args[*]}" wait_listening "$pod"; then
      healthy() {
        for _ in $(seq 50); do podman healthcheck run "$pod" && return 0; sleep 0.2; done
        return 1
      }
      check "image HEALTHCHECK (gradserve health) reports healthy" healthy
      runs_as_10001() {
        local pid
        pid=$(podman inspect --format '{{.State.Pid}}' "$pod") && grep -E '^Uid:[[:space:]]+10001[[:space:]]' "/proc/$pid/status"
      }
      check "server process runs as uid 10001, not root" runs_as_10001
      check "without the token: UNAUTHENTICATED (exit 2)" unauthenticated podman exec "$pod" gradserve
      check "with the token: the motivating case is JACOBIAN_AT_LOGITS (exit 1)" \
        verify_motivating_case podman exec "$pod" gradserve --token="$token"
      check "podman stop: SIGTERM to PID 1, exit 0 within 5 s" stop_within "$pod" 5
      detail '^exit status'
    fi
  else
    fail "arguments of the Deployment (validate.mjs run-args)" "$work/run.err"
  fi

  section "replicas on loopback, driven from the host"
  # --network=host with port 0: each server picks a free loopback port and prints it. The
  # image's HEALTHCHECK probes 50051, which these do not use, so the host client checks instead.
  ports=()
  for r in a b; do
    podman run -d --name "$prefix-$r" --network=host --no-healthcheck "$image" --listen=127.0.0.1:0 >/dev/null
    port=$(wait_listening "$prefix-$r") && ports+=("$port")
  done
  check "two replicas listening on 127.0.0.1 (ports ${ports[*]:-none})" test "${#ports[@]}" = 2
  if [ "${#ports[@]}" = 2 ]; then
    pa=${ports[0]} pb=${ports[1]}
    check "host client: health of replica a" "$client" --target="127.0.0.1:$pa" --timeout=5 health
    check "host client: health of gradserve.v1.GradientService on replica b" \
      "$client" --target="127.0.0.1:$pb" --timeout=5 health --service gradserve.v1.GradientService
    check "host client: motivating case is JACOBIAN_AT_LOGITS (exit 1)" \
      verify_motivating_case "$client" --target="127.0.0.1:$pa"

    # Which replica served the calls: the CPU time each container used during the bench, from its
    # cgroup (every thread, in ns), against what each used while idle for as long.
    bench_both() {
      local a0 b0 a1 b1 a2 b2 t0 t1 idle_a idle_b da db
      a0=$(container_cpu_ns "$prefix-a") b0=$(container_cpu_ns "$prefix-b") t0=$(date +%s%N)
      "$client" bench --rpc backward --shape 1,10 --requests 2000 --format=json \
        --target="ipv4:127.0.0.1:$pa,127.0.0.1:$pb" >"$work/bench.json" || return 1
      t1=$(date +%s%N) a1=$(container_cpu_ns "$prefix-a") b1=$(container_cpu_ns "$prefix-b")
      sleep "$(awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.3f", ns / 1e9}')"
      a2=$(container_cpu_ns "$prefix-a") b2=$(container_cpu_ns "$prefix-b")
      cat "$work/bench.json"
      da=$(((a1 - a0) / 1000000)) db=$(((b1 - b0) / 1000000))
      idle_a=$(((a2 - a1) / 1000000)) idle_b=$(((b2 - b1) / 1000000))
      echo "CPU ms during the bench: replica a $da, replica b $db; idle for as long: a $idle_a, b $idle_b"
      grep -Eq '"requests": ?2000[,}]' "$work/bench.json" && grep -Eq '"errors": ?0[,}]' "$work/bench.json" || return 1
      # Each replica worked well beyond idle (10x), and neither did less than a quarter of the total.
      ((da > 10 * idle_a + 5 && db > 10 * idle_b + 5 && 4 * da > da + db && 4 * db > da + db))
    }
    check "bench: 2000 Backward calls over ipv4:a,b, no errors, both replicas served" bench_both
    detail '^CPU ms'

    # A replica leaving under load, as in a rolling update: its server drains and exits 0 in time,
    # and round_robin sends the client's calls to the other one. A few calls that meet the
    # shutdown fail with CANCELLED (0 to 13 of 20,000-40,000 in trials here); more than 1% would
    # mean the client did not move to replica a.
    stop_under_load() {
      local bench status=0 errors requests
      "$client" bench --rpc backward --shape 1,10 --concurrency 8 --duration 3 --format=json \
        --target="ipv4:127.0.0.1:$pa,127.0.0.1:$pb" >"$work/bench-stop.json" 2>"$work/bench-stop.err" &
      bench=$!
      sleep 1
      stop_within "$prefix-b" 5 || status=1
      wait "$bench" # non-zero when any call failed; the count decides
      cat "$work/bench-stop.json" "$work/bench-stop.err"
      errors=$(grep -Eo '"errors": ?[0-9]+' "$work/bench-stop.json" | grep -Eo '[0-9]+$')
      requests=$(grep -Eo '"requests": ?[0-9]+' "$work/bench-stop.json" | grep -Eo '[0-9]+$')
      echo "calls that failed while replica b stopped: ${errors:-?} of ${requests:-?}"
      [ "$status" = 0 ] && [ -n "$errors" ] && [ -n "$requests" ] && ((requests > 0 && 100 * errors <= requests))
    }
    check "podman stop replica b under load: exit 0 within 5 s, the bench goes on with replica a" stop_under_load
    detail '^(exit status|calls that failed)'
    check "podman stop replica a: exit 0 within 5 s" stop_within "$prefix-a" 5
    detail '^exit status'
  fi

  section "deploy/compose.yaml on this host"
  # compose.yaml as written (bridge network, published port, read-only root, limits), with the
  # port published on a free loopback port instead of 50051.
  free_port() {
    local used port
    used=$(awk 'NR > 1 && $4 == "0A" {split($2, a, ":"); print a[2]}' /proc/net/tcp /proc/net/tcp6)
    for _ in $(seq 100); do
      port=$((20000 + RANDOM % 40000))
      grep -qx "$(printf '%04X' "$port")" <<<"$used" || { echo "$port"; return 0; }
    done
    return 1
  }
  compose() { GRADSERVE_PUBLISH="127.0.0.1:$compose_port" podman-compose -p "$prefix-compose" -f deploy/compose.yaml "$@"; }
  compose_port=$(free_port)
  compose_up() {
    compose up -d --no-build || return 1
    for _ in $(seq 50); do "$client" --target="127.0.0.1:$compose_port" --timeout=2 health && return 0; sleep 0.2; done
    return 1
  }
  check "podman-compose up; health through the published port 127.0.0.1:$compose_port" compose_up
  compose_stop() {
    local code
    compose stop || return 1
    code=$(podman inspect --format '{{.State.ExitCode}}' "$prefix-compose_gradserve_1") || return 1
    echo "exit status $code"
    [ "$code" = 0 ]
  }
  check "podman-compose stop: the server exits 0" compose_stop
  check "podman-compose down" compose down
fi

# The Deployment's pod spec for real (podman kube play): deploy/kube_play_check.sh.
if [ "$image_ok" = 1 ]; then . deploy/kube_play_check.sh; fi

# --- manifests and Dockerfile, offline --------------------------------------------------------

section "manifests and Dockerfile"
check "yamllint deploy/ (config deploy/yamllint.yaml)" yamllint --strict -c deploy/yamllint.yaml deploy
# validate NAME ARGS...: runs deploy/validate.mjs, whose PASS/FAIL lines count as checks here.
validate() {
  local log="$work/validate.$1" status
  shift
  node deploy/validate.mjs "$@" >"$log" 2>&1
  status=$?
  cat "$log"
  passed=$((passed + $(grep -c '^PASS' "$log")))
  failed=$((failed + $(grep -c '^FAIL' "$log")))
  # A crash or a failure it did not print still fails.
  [ "$status" = 0 ] || grep -q '^FAIL' "$log" || fail "validate.mjs $* exited with status $status"
}
if [ -n "${GRADSERVE_NODE_MODULES:-}" ]; then
  validate base k8s deploy/k8s
  validate token k8s deploy/k8s --component token
  validate prometheus k8s deploy/k8s --component prometheus-operator
  validate self self-test deploy/k8s
  validate compose compose deploy/compose.yaml
  # Any finding, warning or error, fails: the Dockerfile is short enough to keep clean.
  lint_dockerfile() {
    local out
    out=$("$GRADSERVE_NODE_MODULES/.bin/dockerfile-utils" lint Dockerfile 2>&1) || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
  }
  check "dockerfile-utils lint Dockerfile: no errors or warnings" lint_dockerfile
else
  fail "manifest validation and Dockerfile lint (the npm packages are missing)"
fi

echo "      (total $((SECONDS - t_start)) s)"
finish
