#!/usr/bin/env bash
# Benchmarks `berth load` / `berth save` against `skopeo copy` doing the same
# work on the same Debian minbase image, in one run, and prints the ratios.
# Usage: scripts/bench/load-save.sh [RUNS]   (needs hyperfine, skopeo, debootstrap)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
scripts/install-test-deps.sh
cargo build --release --locked -q -p berth-cli
berth=$PWD/target/release/berth
rootfs=$(scripts/fixtures/debian-minbase.sh)
w=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
trap 'rm -rf "$w"' EXIT
src=$w/src
$berth --root "$src" import "$rootfs" debian:minbase >/dev/null
$berth --root "$src" save -o "$w/docker.tar" debian:minbase
$berth --root "$src" save --format oci -o "$w/oci.tar" debian:minbase
ref=docker.io/library/debian:minbase
echo "image: $(du -h "$rootfs" | cut -f1) rootfs, gzip layer $(du -h "$w/oci.tar" | cut -f1) in OCI archive"

bench() { # name berth-cmd skopeo-cmd prepare
  hyperfine -N --style none --runs "$runs" --warmup 1 --prepare "$4" --export-json "$w/$1.json" \
    -n berth "$2" -n skopeo "$3" >/dev/null 2>"$w/hyperfine.log"
  python3 - "$w/$1.json" "$1" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, s = r["berth"]["median"], r["skopeo"]["median"]
print(f"{sys.argv[2]:<24} berth {b*1000:8.1f} ms   skopeo {s*1000:8.1f} ms   skopeo/berth = {s/b:5.2f}x")
PY
}
clean="rm -rf $w/dst $w/out.tar"
bench "load docker-archive" "$berth --root $w/dst load -i $w/docker.tar" \
  "skopeo copy -q --dest-decompress docker-archive:$w/docker.tar oci:$w/dst:x" "$clean"
bench "load oci-archive" "$berth --root $w/dst load -i $w/oci.tar" \
  "skopeo copy -q oci-archive:$w/oci.tar oci:$w/dst:x" "$clean"
bench "save docker-archive" "$berth --root $src save -o $w/out.tar debian:minbase" \
  "skopeo copy -q oci:$src:$ref docker-archive:$w/out.tar:debian:minbase" "$clean"
bench "save oci-archive" "$berth --root $src save --format oci -o $w/out.tar debian:minbase" \
  "skopeo copy -q oci:$src:$ref oci-archive:$w/out.tar:debian:minbase" "$clean"
