#!/usr/bin/env bash
# Benchmarks `berth push` / `berth pull` against `skopeo copy` moving the same
# image to and from the same local registry, side by side with hyperfine, and
# prints the ratios (skopeo time / berth time: above 1 means berth is faster).
#   push: local store (an OCI layout) -> an empty registry (restarted empty
#         before every run, untimed)
#   pull: registry -> an empty local store / OCI layout (removed before every run)
# Registries: Debian's docker-registry (CNCF distribution 2.8) and
# `berth registry serve`, both on 127.0.0.1 over plain HTTP.
# Usage: scripts/bench/push-pull.sh [RUNS] [IMAGE]   (env BERTH: a prebuilt binary)
#   IMAGE: minbase (default; Debian bookworm minbase, ~50 MB gzipped) or busybox
# Needs: skopeo, docker-registry, hyperfine, debootstrap (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
image=${2:-minbase}
for t in skopeo docker-registry hyperfine python3 curl; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install skopeo docker-registry hyperfine)" >&2; exit 1; }
done
if [ -z "${BERTH:-}" ]; then
  cargo build --release -q -p berth-cli
fi
berth=${BERTH:-${CARGO_TARGET_DIR:-$PWD/target}/release/berth}
w=$(mktemp -d /var/tmp/berth-pushpull.XXXXXX)
# berth and skopeo each get a clean configuration (no credentials, no caches).
export BERTH_CONFIG=$w/berth-config DOCKER_CONFIG=$w/docker-config HOME=$w/home
mkdir -p "$HOME" "$BERTH_CONFIG" "$DOCKER_CONFIG"
case $image in
  minbase) rootfs=$(scripts/fixtures/debian-minbase.sh) ;;
  busybox) rootfs=$w/busybox.tar; scripts/fixtures/busybox-rootfs.sh "$rootfs" ;;
  *) echo "unknown image $image (minbase or busybox)" >&2; exit 1 ;;
esac
$berth --root "$w/src" import "$rootfs" bench:1 >/dev/null
src="oci:$w/src:docker.io/library/bench:1"
size=$(du -sh "$w/src/blobs" | cut -f1)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$w/push.pid" ] && kill "$(cat "$w/push.pid")" 2>/dev/null || true
  rm -rf "$w"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -fs "http://$1/v2/" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no registry at $1" >&2; exit 1; }

# A registry start script, so hyperfine's --prepare can restart it empty.
# Usage: $w/start KIND ADDR PIDFILE DATADIR
cat >"$w/start" <<EOF
#!/usr/bin/env bash
set -euo pipefail
kind=\$1 addr=\$2 pidfile=\$3 data=\$4
if [ -f "\$pidfile" ]; then
  p=\$(cat "\$pidfile"); kill "\$p" 2>/dev/null || true
  while kill -0 "\$p" 2>/dev/null; do sleep 0.01; done
fi
rm -rf "\$data"; mkdir -p "\$data"
if [ "\$kind" = dist ]; then
  cat >"\$data.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: \$data
  delete:
    enabled: true
http:
  addr: \$addr
YML
  setsid docker-registry serve "\$data.yml" >/dev/null 2>&1 </dev/null &
else
  BERTH_LOG=warn setsid $berth --root "\$data" registry serve --addr "\$addr" >/dev/null 2>&1 </dev/null &
fi
echo \$! >"\$pidfile"
for _ in \$(seq 200); do curl -fs "http://\$addr/v2/" >/dev/null 2>&1 && exit 0; sleep 0.02; done
echo "registry \$kind at \$addr did not start" >&2; exit 1
EOF
chmod +x "$w/start"

ratio() { python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
t = {x["command"]: x for x in r}
b, s = t["berth"], t["skopeo"]
print("berth %.3f s ± %.3f   skopeo %.3f s ± %.3f   skopeo/berth = %.2fx"
      % (b["median"], b["stddev"] or 0, s["median"], s["stddev"] or 0, s["median"] / b["median"]))
PY
}

echo "image: $image ($size of blobs); $runs runs each; medians"
for kind in dist berth; do
  # push: to a registry restarted empty before every run
  paddr=127.0.0.1:$(free_port)
  hyperfine -N -r "$runs" -w 1 --export-json "$w/push-$kind.json" --style none \
    --prepare "$w/start $kind $paddr $w/push.pid $w/push-data" \
    -n berth "$berth --root $w/src push -q bench:1 $paddr/bench:1" \
    -n skopeo "skopeo copy -q --dest-tls-verify=false $src docker://$paddr/bench:1" \
    >/dev/null 2>"$w/hyperfine.err" || { cat "$w/hyperfine.err" >&2; exit 1; }
  kill "$(cat "$w/push.pid")" 2>/dev/null || true; rm -f "$w/push.pid"
  printf '%-6s push  %s\n' "$kind" "$(ratio "$w/push-$kind.json")"

  # pull: from a registry holding the image, into an empty destination
  qaddr=127.0.0.1:$(free_port)
  "$w/start" "$kind" "$qaddr" "$w/pull-$kind.pid" "$w/pull-data-$kind"
  pids+=("$(cat "$w/pull-$kind.pid")")
  skopeo copy -q --dest-tls-verify=false "$src" "docker://$qaddr/bench:1"
  hyperfine -N -r "$runs" -w 1 --export-json "$w/pull-$kind.json" --style none \
    --prepare "rm -rf $w/dst-b $w/dst-s" \
    -n berth "$berth --root $w/dst-b pull -q $qaddr/bench:1" \
    -n skopeo "skopeo copy -q --src-tls-verify=false docker://$qaddr/bench:1 oci:$w/dst-s:x" \
    >/dev/null 2>"$w/hyperfine.err" || { cat "$w/hyperfine.err" >&2; exit 1; }
  printf '%-6s pull  %s\n' "$kind" "$(ratio "$w/pull-$kind.json")"
done
