#!/usr/bin/env bash
# Installs everything berth's tests and demo need on a fresh Debian machine.
# Idempotent: skips what is already there. Needs root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
apt_pkgs=(skopeo busybox-static umoci hyperfine debootstrap tar docker.io)
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
# The .dockerignore oracle (npm @balena/dockerignore).
if [ -f "$here/../testdata/dockerignore/oracle/package.json" ] &&
   [ ! -d "$here/../testdata/dockerignore/oracle/node_modules/@balena/dockerignore" ]; then
  (cd "$here/../testdata/dockerignore/oracle" && npm ci --silent --no-audit --no-fund)
fi
