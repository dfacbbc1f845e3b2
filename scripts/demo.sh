#!/usr/bin/env bash
# berth's main job on an embedded default, on a fresh machine:
#   builds berth; makes a busybox base image from Debian's busybox-static;
#   builds the multistage example (examples/hello) on it, then rebuilds it
#   (fully cached, same image id); serves a registry with `berth registry
#   serve`, pushes the image to it and pulls it into a second store; inspects
#   it layer by layer (`berth dive --ci`, from the store and from the
#   registry) and saves it as a docker-archive.
# Uses its own store under $DEMO_DIR (default /tmp/berth-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${DEMO_DIR:-/tmp/berth-demo}
rm -rf "$demo"; mkdir -p "$demo"
export BERTH_ROOT=$demo/store
need=()
for p in busybox-static skopeo; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked -q -p berth-cli
berth=$PWD/target/release/berth
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

BERTH=$berth step scripts/make-busybox-image.sh busybox:latest
step $berth build -t hello:latest --iidfile "$demo/iid1" examples/hello
step $berth build -t hello:latest --iidfile "$demo/iid2" examples/hello
cmp -s "$demo/iid1" "$demo/iid2" && echo "rebuild: fully cached, same image id $(cat "$demo/iid1")"
step $berth images
step $berth history hello

# A registry on its own store, and the image pushed to it.
$berth registry serve --addr 127.0.0.1:0 --root "$demo/registry" >"$demo/registry.log" 2>&1 &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^listening on ' "$demo/registry.log" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$demo/registry.log" | head -1)
step $berth tag hello "$addr/demo/hello:1"
step $berth push "$addr/demo/hello:1"
step skopeo inspect --tls-verify=false "docker://$addr/demo/hello:1"
step $berth --root "$demo/store2" pull "$addr/demo/hello:1"

# Layer inspection: from the store, and streamed straight from the registry.
step $berth dive --ci hello
step $berth dive --ci --source registry "$addr/demo/hello:1"
step $berth save -o "$demo/hello-docker.tar" hello
step $berth system df
step $berth system check
echo
echo "pushed to $addr/demo/hello:1 (registry store: $demo/registry); archive: $demo/hello-docker.tar (docker load)"
