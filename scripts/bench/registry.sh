#!/usr/bin/env bash
# Benchmarks `berth registry serve` against Debian's docker-registry (the CNCF
# distribution registry 2.8) on the same machine, same client, same image, in
# one run, and prints the ratios:
#   - skopeo push / pull of the Debian minbase image (fresh registries per run)
#   - wrk requests/s on manifest GET and small-blob GET
#   - blob GET throughput, and peak RSS under 100 concurrent clients
# Usage: scripts/bench/registry.sh [RUNS]   (env: WRK_SECONDS, default 10)
# Needs: skopeo, wrk, docker-registry, debootstrap (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
secs=${WRK_SECONDS:-10}
for t in skopeo wrk docker-registry python3 curl; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install skopeo wrk docker-registry)" >&2; exit 1; }
done
cargo build --release -q -p berth-cli
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
rootfs=$(scripts/fixtures/debian-minbase.sh)
w=$(mktemp -d /var/tmp/berth-regbench.XXXXXX)
BERTH_PID=
DIST_PID=
cleanup() {
  for p in $BERTH_PID $DIST_PID; do kill "$p" 2>/dev/null || true; done
  rm -rf "$w"
}
trap cleanup EXIT
$berth --root "$w/src" import "$rootfs" debian:minbase >/dev/null
src="oci:$w/src:docker.io/library/debian:minbase"

wait_up() { # URL
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_berth() { # fresh root each time
  [ -n "$BERTH_PID" ] && { kill "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null || true; }
  rm -rf "$w/berth-root"; : >"$w/berth.out"
  BERTH_LOG=warn $berth --root "$w/berth-root" registry serve --addr 127.0.0.1:0 >"$w/berth.out" 2>"$w/berth.err" &
  BERTH_PID=$!
  for _ in $(seq 100); do grep -q listening "$w/berth.out" && break; sleep 0.05; done
  BERTH=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$w/berth.out")
  wait_up "http://$BERTH/v2/"
}
start_dist() {
  [ -n "$DIST_PID" ] && { kill "$DIST_PID"; wait "$DIST_PID" 2>/dev/null || true; }
  rm -rf "$w/dist-root"; mkdir -p "$w/dist-root"
  DIST=127.0.0.1:$(free_port)
  cat >"$w/dist.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory   # as in Debian's default config
  filesystem:
    rootdirectory: $w/dist-root
  delete:
    enabled: true
http:
  addr: $DIST
YML
  docker-registry serve "$w/dist.yml" >"$w/dist.log" 2>&1 &
  DIST_PID=$!
  wait_up "http://$DIST/v2/"
}

now() { date +%s.%N; }
since() { python3 -c 'import sys; print(float(sys.argv[1]) - float(sys.argv[2]))' "$(now)" "$1"; }
median() { python3 -c 'import sys,statistics; print("%.3f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

echo "image: Debian bookworm minbase, $(du -h "$rootfs" | cut -f1) rootfs; $runs runs; wrk ${secs}s"
bp=(); dp=(); bl=(); dl=()
for i in $(seq "$runs"); do
  start_berth; start_dist
  t=$(now); skopeo copy -q --dest-tls-verify=false "$src" "docker://$BERTH/debian:minbase"; bp+=("$(since "$t")")
  t=$(now); skopeo copy -q --dest-tls-verify=false "$src" "docker://$DIST/debian:minbase"; dp+=("$(since "$t")")
  rm -rf "$w/pull-b" "$w/pull-d"
  t=$(now); skopeo copy -q --src-tls-verify=false "docker://$BERTH/debian:minbase" "oci:$w/pull-b:x"; bl+=("$(since "$t")")
  t=$(now); skopeo copy -q --src-tls-verify=false "docker://$DIST/debian:minbase" "oci:$w/pull-d:x"; dl+=("$(since "$t")")
done
b=$(median "${bp[@]}"); d=$(median "${dp[@]}")
printf '%-28s berth %8.3f s   distribution %8.3f s   distribution/berth = %sx\n' "skopeo push" "$b" "$d" "$(ratio "$d" "$b")"
b=$(median "${bl[@]}"); d=$(median "${dl[@]}")
printf '%-28s berth %8.3f s   distribution %8.3f s   distribution/berth = %sx\n' "skopeo pull" "$b" "$d" "$(ratio "$d" "$b")"

manifest=$(skopeo inspect --raw --tls-verify=false "docker://$BERTH/debian:minbase")
config=$(echo "$manifest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')
layer=$(echo "$manifest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
# (No HEAD under wrk: wrk waits for a body after HEAD responses.)
rps() { # wrk args... -> requests/s; refuses to report error responses
  local out
  out=$(wrk "$@" 2>/dev/null)
  if echo "$out" | grep -q 'Non-2xx'; then
    echo "error responses during wrk $*:" >&2; echo "$out" >&2; exit 1
  fi
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
peak_rss_kb() { # PID during a 100-client wrk of URL
  local pid=$1 url=$2 peak=0
  wrk -t2 -c100 -d"${secs}s" "$url" >/dev/null 2>&1 &
  local wpid=$!
  while kill -0 "$wpid" 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$peak" ] && peak=$r
    sleep 0.2
  done
  echo "$peak"
}
row() { # name berth-value dist-value unit
  printf '%-28s berth %10s %s   distribution %10s %s   berth/distribution = %sx\n' "$1" "$2" "$4" "$3" "$4" "$(ratio "$2" "$3")"
}
for what in "manifest GET" "small blob GET (config)"; do
  case $what in
    "manifest GET") path=/v2/debian/manifests/minbase; extra=(-H "$accept") ;;
    *) path=/v2/debian/blobs/$config; extra=() ;;
  esac
  b=$(rps -t2 -c50 -d"${secs}s" "${extra[@]}" "http://$BERTH$path")
  d=$(rps -t2 -c50 -d"${secs}s" "${extra[@]}" "http://$DIST$path")
  row "$what (req/s)" "$b" "$d" ""
done
mbps() { wrk -t2 -c4 -d"${secs}s" "$1" 2>/dev/null | awk '/Transfer\/sec/ {v=$2; u=substr(v,length(v)-1); n=substr(v,1,length(v)-2); if (u=="GB") n*=1024; if (u=="KB") n/=1024; print n}'; }
b=$(mbps "http://$BERTH/v2/debian/blobs/$layer"); d=$(mbps "http://$DIST/v2/debian/blobs/$layer")
row "layer GET (MB/s, 4 clients)" "$b" "$d" ""
b=$(peak_rss_kb "$BERTH_PID" "http://$BERTH/v2/debian/manifests/minbase")
d=$(peak_rss_kb "$DIST_PID" "http://$DIST/v2/debian/manifests/minbase")
printf '%-28s berth %8s MB   distribution %8s MB\n' "peak RSS, 100 clients" "$((b / 1024))" "$((d / 1024))"
