#!/usr/bin/env bash
# Makes the busybox base image used by tests and examples, and loads it into a
# berth store with berth itself (`berth import`).
# Usage: scripts/make-busybox-image.sh [NAME]   (default NAME: busybox:latest)
# Honours BERTH_ROOT and BERTH (the berth binary; default: target/release/berth).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:-busybox:latest}
berth=${BERTH:-$here/../target/release/berth}
cache=${BERTH_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-fixtures}
mkdir -p "$cache"
tarball=$cache/busybox-rootfs.tar
if [ ! -s "$tarball" ] || [ /bin/busybox -nt "$tarball" ]; then
  "$here/fixtures/busybox-rootfs.sh" "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
fi
"$berth" import "$tarball" "$name" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["sh"]' \
  --message "busybox from Debian's busybox-static"
