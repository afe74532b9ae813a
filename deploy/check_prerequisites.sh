# Sourced by deploy/check.sh (uses its check, $work, $cache): what the checks need on the host:
# Debian packages, podman's containers.conf, the debian base images made locally (no registry is
# reachable here), and the npm modules of deploy/package-lock.json.

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Settings podman needs on these machines: runc (crun cannot use this cgroup
# v1/v2 hybrid), cgroupfs (no systemd), and ulimits no higher than the hard limit we have
# (no CAP_SYS_RESOURCE). netavark avoids podman's fallback to CNI plugins that are not installed.
write_containers_conf() {
  local hard
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=1048576
  cat >"$cache/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
  export CONTAINERS_CONF="$cache/containers.conf"
}

# localhost/debian:bookworm (debootstrap minbase) and localhost/debian:bookworm-slim (the same
# without docs, man pages and locales, and dpkg told to skip them from then on, as Debian's own
# slim images do). `podman build --pull=never` resolves FROM debian:bookworm[-slim] to these.
make_base_images() {
  local mirror rootfs
  podman image exists localhost/debian:bookworm && podman image exists localhost/debian:bookworm-slim && return 0
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs="$cache/rootfs"
  rm -rf "$rootfs"
  echo "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; return 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null || return 1
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/var/log/*.log
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm-slim >/dev/null || return 1
  rm -rf "$rootfs"
}

# The pinned npm packages (deploy/package.json, package-lock.json), installed once per lock file.
npm_modules() {
  local dir="$cache/npm"
  if ! cmp -s deploy/package-lock.json "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
    rm -rf "$dir" && mkdir -p "$dir" && cp deploy/package.json deploy/package-lock.json "$dir/" &&
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  fi
  export GRADSERVE_NODE_MODULES="$dir/node_modules"
}

# One run at a time per machine: runs share the cache, the base images and the image tag.
mkdir -p "$cache"
