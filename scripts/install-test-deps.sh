#!/usr/bin/env bash
# Installs everything berth's tests and demo need on a fresh Debian machine.
# Idempotent: skips what is already there. Needs root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# skopeo, docker.io (dockerd), containerd (ctr), docker-registry (CNCF
# distribution): interop peers; busybox-static, debootstrap: base images;
# golang-go: Go's standard library as an oracle (shell, dockerignore);
# tmux: the dive TUI tests; wrk, hyperfine, time: benchmarks.
apt_pkgs=(skopeo busybox-static umoci hyperfine debootstrap tar docker.io containerd
  docker-registry golang-go tmux wrk openssl curl time apache2-utils iproute2
  python3)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# BuildKit's own Dockerfile parser, as a differential oracle.
if ! python3 -c 'import dockerfile' 2>/dev/null; then
  pip install -q dockerfile==3.4.0
fi
# oras (the ORAS Python client) pushes artifacts in the registry interop tests.
if ! python3 -c 'import oras' 2>/dev/null; then
  pip install -q oras==0.2.43
fi
# The .dockerignore oracle (npm @balena/dockerignore).
if [ -f "$here/../testdata/dockerignore/oracle/package.json" ] &&
   [ ! -d "$here/../testdata/dockerignore/oracle/node_modules/@balena/dockerignore" ]; then
  (cd "$here/../testdata/dockerignore/oracle" && npm ci --silent --no-audit --no-fund)
fi
