#!/usr/bin/env bash
# Benchmarks berth's pull-through mirror (`berth registry serve --mirror`)
# against distribution's proxy mode (Debian's docker-registry with
# `proxy.remoteurl`), same upstream (a plain docker-registry holding the
# Debian minbase image), same client (skopeo), same machine, one run:
#   - cold pull (empty cache; both mirrors restarted on a fresh root before
#     each run), next to a pull from the upstream directly (the baseline);
#   - warm pull (everything cached);
#   - 20 skopeo pulls at once of the uncached image, counting the upstream's
#     GETs of the 50 MB layer (from its access log).
# The tools take turns within each round; prints medians and the ratios,
# and for cold pulls also the median of each round's ratio to its direct pull.
# Usage: scripts/bench/mirror.sh [RUNS]   (default 5; BERTH_BIN=PATH to skip the build)
# Needs: skopeo, docker-registry, curl, python3, debootstrap
# (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
self=$PWD/scripts/bench/mirror.sh

wait_up() { # URL
  for _ in $(seq 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server at $1 did not come up" >&2; exit 1
}

# Internal: (re)start one mirror on an empty root; called before each cold run.
if [ "${1:-}" = _start ]; then
  kind=$2
  pidf=$W/$kind.pid
  if [ -f "$pidf" ]; then
    pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
  fi
  rm -rf "$W/$kind-root" "$W/out"
  mkdir -p "$W/$kind-root"
  case $kind in
    berth)
      BERTH_LOG=warn nohup "$BERTH_BIN" --root "$W/berth-root" registry serve \
        --addr "$BERTH_ADDR" --mirror "docker.io=http://$UP" >"$W/berth.log" 2>&1 &
      addr=$BERTH_ADDR ;;
    dist)
      nohup docker-registry serve "$W/dist-proxy.yml" >"$W/dist-proxy.log" 2>&1 &
      addr=$DIST_ADDR ;;
  esac
  echo $! >"$pidf"
  wait_up "http://$addr/v2/"
  exit 0
fi

runs=${1:-5}
for t in skopeo docker-registry curl python3; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/install-test-deps.sh)" >&2; exit 1; }
done
# BERTH_BIN=PATH benchmarks that binary instead of building one.
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -q -p berth-cli
  BERTH_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi
export BERTH_BIN
rootfs=$(scripts/fixtures/debian-minbase.sh)
W=$(mktemp -d /var/tmp/berth-mirrorbench.XXXXXX)
export W
UP_PID=
cleanup() {
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export UP=127.0.0.1:$(free_port) BERTH_ADDR=127.0.0.1:$(free_port) DIST_ADDR=127.0.0.1:$(free_port)

# The upstream: a plain docker-registry, access log on (it counts fetches).
cat >"$W/up.yml" <<YML
version: 0.1
log:
  level: error
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $W/up-root
http:
  addr: $UP
YML
docker-registry serve "$W/up.yml" >"$W/up.log" 2>&1 &
UP_PID=$!
wait_up "http://$UP/v2/"
# distribution as a pull-through cache of it.
cat >"$W/dist-proxy.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $W/dist-root
http:
  addr: $DIST_ADDR
proxy:
  remoteurl: http://$UP
YML

"$BERTH_BIN" --root "$W/src" import "$rootfs" debian:minbase >/dev/null
skopeo copy -q --dest-tls-verify=false --preserve-digests \
  "oci:$W/src:docker.io/library/debian:minbase" "docker://$UP/library/debian:minbase"
layer=$(skopeo inspect --raw --tls-verify=false "docker://$UP/library/debian:minbase" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
echo "image: Debian bookworm minbase ($(du -h "$rootfs" | cut -f1) rootfs), layer $layer; $runs runs"

pull() { # ADDR -> the skopeo command pulling the image from it
  echo "skopeo copy -q --src-tls-verify=false docker://$1/library/debian:minbase oci:$W/out:x"
}
# One run of CMD after PREPARE (untimed); appends its seconds to $W/NAME.
timed() { # NAME PREPARE CMD
  eval "$2" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  eval "$3" >/dev/null
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{print $2 - $1}' >>"$W/$1"
}
# The tools take turns within each round (one untimed round first), so that
# load drift on a shared machine hits them alike.
cold_round() {
  timed direct "rm -rf $W/out" "$(pull "$UP")"
  timed berth-cold "$self _start berth" "$(pull "$BERTH_ADDR")"
  timed dist-cold "$self _start dist" "$(pull "$DIST_ADDR")"
}
cold_round
rm -f "$W/direct" "$W/berth-cold" "$W/dist-cold"
for _ in $(seq "$runs"); do cold_round; done
# Warm: caches filled by one pull, then measured. `sync` first: the fills'
# (and the cold runs') dirty pages are written back before measuring, not
# during whichever warm runs come first.
"$self" _start berth && eval "$(pull "$BERTH_ADDR")"
"$self" _start dist && eval "$(pull "$DIST_ADDR")"
sync
for _ in $(seq "$runs"); do
  timed berth-warm "rm -rf $W/out" "$(pull "$BERTH_ADDR")"
  timed dist-warm "rm -rf $W/out" "$(pull "$DIST_ADDR")"
done

# 20 clients at once on an empty cache: upstream GETs of the layer.
concurrent() { # KIND ADDR -> "seconds fetches failed-pulls"
  "$self" _start "$1"
  local before after t0 t1
  before=$(grep -c "GET /v2/library/debian/blobs/$layer" "$W/up.log" || true)
  : >"$W/failed-$1"
  t0=$(date +%s.%N)
  for i in $(seq 20); do
    { skopeo copy -q --src-tls-verify=false "docker://$2/library/debian:minbase" "oci:$W/c$i:x" \
        2>>"$W/failed-$1.log" || echo x >>"$W/failed-$1"; } &
  done
  wait
  t1=$(date +%s.%N)
  after=$(grep -c "GET /v2/library/debian/blobs/$layer" "$W/up.log" || true)
  rm -rf "$W"/c*
  echo "$(python3 -c "print('%.2f' % ($t1 - $t0))") $((after - before)) $(wc -l <"$W/failed-$1")"
}
read -r bc_t bc_n bc_f < <(concurrent berth "$BERTH_ADDR")
read -r dc_t dc_n dc_f < <(concurrent dist "$DIST_ADDR")
for k in berth dist; do
  [ -s "$W/failed-$k.log" ] && { echo "failed pulls through $k:" >&2; sort -u "$W/failed-$k.log" | head -3 >&2; }
done

python3 - "$W" "$bc_t" "$bc_n" "$dc_t" "$dc_n" "$bc_f" "$dc_f" <<'PY'
import json, statistics, sys
w, bc_t, bc_n, dc_t, dc_n, bc_f, dc_f = sys.argv[1:]
def times(name):
    return [float(t) for t in open(f"{w}/{name}")]
def med(name):
    return statistics.median(times(name))
def paired(name):
    # Each cold pull against the direct pull of its own round: drift in
    # the machine's speed between rounds cancels out.
    return statistics.median(c / d for c, d in zip(times(name), times("direct")))
d, bc, dc, bw, dw = (med(n) for n in ["direct", "berth-cold", "dist-cold", "berth-warm", "dist-warm"])
pb, pd = paired("berth-cold"), paired("dist-cold")
print(f"{'pull from the upstream directly':34} {d:7.3f} s")
print(f"{'cold, berth mirror':34} {bc:7.3f} s   {100 * (bc / d - 1):+.0f}% over direct (per round: {100 * (pb - 1):+.0f}%)")
print(f"{'cold, distribution proxy':34} {dc:7.3f} s   {100 * (dc / d - 1):+.0f}% over direct (per round: {100 * (pd - 1):+.0f}%)   distribution/berth = {dc / bc:.2f}x")
print(f"{'warm, berth mirror':34} {bw:7.3f} s")
print(f"{'warm, distribution proxy':34} {dw:7.3f} s   distribution/berth = {dw / bw:.2f}x")
print(f"{'20 cold pulls at once, berth':34} {float(bc_t):7.2f} s   upstream GETs of the layer: {bc_n}, failed pulls: {bc_f}")
print(f"{'20 cold pulls at once, distribution':34} {float(dc_t):7.2f} s   upstream GETs of the layer: {dc_n}, failed pulls: {dc_f}")
PY
