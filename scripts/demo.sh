#!/usr/bin/env bash
# berth's main job on an embedded default, on a fresh machine:
# builds berth, makes a busybox base image from Debian's busybox-static,
# imports it, lists and inspects it, and saves it as docker and OCI archives
# that skopeo can read. Uses its own store under $DEMO_DIR (default /tmp/berth-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${DEMO_DIR:-/tmp/berth-demo}
rm -rf "$demo"; mkdir -p "$demo"
export BERTH_ROOT=$demo/store
command -v busybox >/dev/null && dpkg -s busybox-static >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
cargo build --release --locked -q -p berth-cli
berth=target/release/berth
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
BERTH=$berth step scripts/make-busybox-image.sh busybox:latest
step $berth images
step $berth inspect busybox
step $berth history busybox
step $berth tag busybox localhost:5000/demo/busybox:1
step $berth save -o "$demo/busybox-docker.tar" busybox
step $berth save --format oci -o "$demo/busybox-oci.tar" localhost:5000/demo/busybox:1
step $berth --root "$demo/store2" load -i "$demo/busybox-docker.tar"
step $berth --root "$demo/store2" images
step $berth system df
step $berth system check
echo
echo "archives in $demo: busybox-docker.tar (docker load), busybox-oci.tar (OCI archive)"
