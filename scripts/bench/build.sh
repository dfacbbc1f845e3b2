#!/usr/bin/env bash
# Times `berth build` against docker's BuildKit (dockerd started by hand, its
# built-in BuildKit) and buildah when installed, on one COPY-heavy
# multistage Dockerfile over the same busybox base:
#
#   FROM busybox AS a          COPY files/a/ /data/a/      (FILES/2 files)
#   FROM busybox AS b          COPY files/b/ /data/b/      (FILES/2 files)
#   FROM busybox               COPY --from=a ... ; COPY --from=b ... ; COPY app.txt
#
# Two numbers per tool, medians from hyperfine, all in one run so they
# compare:
#   cold   - empty build cache (berth: fresh store with busybox; docker:
#            `builder prune -af`; buildah: layers removed), warm page cache;
#   cached - nothing changed, the cache is warm (berth's context hash cache
#            too): the CI rebuild case.
# Prints the ratios tool/berth (above 1: berth is faster).
#
# Usage: scripts/bench/build.sh [FILES] [RUNS]   (default 10000 files, 5 runs)
# Needs: hyperfine, docker.io (dockerd); buildah optional.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:-10000}
runs=${2:-5}
cargo build --release --locked -q -p berth-cli
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
w=$(mktemp -d /var/tmp/berth-build-bench.XXXXXX)
dockerd_pid=
cleanup() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  rm -rf "$w" 2>/dev/null || { umount -R "$w"/docker/overlay2/*/merged 2>/dev/null || true; rm -rf "$w"; }
}
trap cleanup EXIT

# The context: FILES small files in two halves, 20 directories each.
python3 - "$w/ctx" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    half = "a" if i % 2 == 0 else "b"
    d = os.path.join(root, "files", half, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d.txt" % i), "w") as f:
        f.write(("line %d of a small file\n" % i) * (1 + i % 16))
with open(os.path.join(root, "app.txt"), "w") as f:
    f.write("app\n")
with open(os.path.join(root, "Dockerfile"), "w") as f:
    f.write("""FROM busybox:latest AS a
COPY files/a/ /data/a/
FROM busybox:latest AS b
COPY files/b/ /data/b/
FROM busybox:latest
COPY --from=a /data/a /data/a
COPY --from=b /data/b /data/b
COPY app.txt /app.txt
""")
PY
du -sh "$w/ctx" | sed 's/^/context: /'

# berth: a store with busybox, copied fresh for every cold run.
BERTH="$berth" BERTH_ROOT="$w/store0" scripts/make-busybox-image.sh >/dev/null
results=()
hyperfine --runs "$runs" --warmup 1 --export-json "$w/berth-cold.json" \
  --prepare "rm -rf $w/store && cp -a $w/store0 $w/store" \
  "$berth --root $w/store build -q -t bench $w/ctx" >/dev/null
"$berth" --root "$w/store" build -q -t bench "$w/ctx" >/dev/null
hyperfine --runs "$runs" --warmup 1 --export-json "$w/berth-cached.json" \
  "$berth --root $w/store build -q -t bench $w/ctx" >/dev/null

median() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"; }
bc_=$(median "$w/berth-cold.json")
bw_=$(median "$w/berth-cached.json")
printf '%-22s cold %8.3fs   cached %8.3fs\n' "berth" "$bc_" "$bw_"

ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

# docker's BuildKit: its own daemon, data root and socket.
if command -v dockerd >/dev/null; then
  mkdir -p "$w/docker" "$w/exec"
  dockerd --host "unix://$w/docker.sock" --data-root "$w/docker" --exec-root "$w/exec" \
    --pidfile "$w/docker.pid" --storage-driver overlay2 --iptables=false --bridge=none \
    >"$w/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST="unix://$w/docker.sock" DOCKER_BUILDKIT=1
  for _ in $(seq 100); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.2; done
  "$berth" --root "$w/store0" save busybox:latest | /usr/bin/docker load >/dev/null
  hyperfine --runs "$runs" --warmup 1 --export-json "$w/docker-cold.json" \
    --prepare "/usr/bin/docker builder prune -af >/dev/null" \
    "/usr/bin/docker build -q -t bench $w/ctx" >/dev/null
  /usr/bin/docker build -q -t bench "$w/ctx" >/dev/null
  hyperfine --runs "$runs" --warmup 1 --export-json "$w/docker-cached.json" \
    "/usr/bin/docker build -q -t bench $w/ctx" >/dev/null
  dc=$(median "$w/docker-cold.json")
  dw=$(median "$w/docker-cached.json")
  printf '%-22s cold %8.3fs   cached %8.3fs\n' "docker BuildKit" "$dc" "$dw"
  results+=("docker BuildKit / berth: cold $(ratio "$dc" "$bc_")x, cached $(ratio "$dw" "$bw_")x")
else
  echo "dockerd not installed (apt-get install docker.io): skipping BuildKit"
fi

# buildah (vfs storage, chroot isolation: no daemon, no runtime needed for COPY).
if command -v buildah >/dev/null; then
  bh=(buildah --root "$w/buildah" --runroot "$w/buildah-run" --storage-driver vfs)
  "$berth" --root "$w/store0" save --format oci -o "$w/bb-oci.tar" busybox:latest
  "${bh[@]}" pull -q "oci-archive:$w/bb-oci.tar" >/dev/null
  "${bh[@]}" tag "$("${bh[@]}" images -q | head -1)" busybox:latest
  hyperfine --runs "$runs" --warmup 1 --export-json "$w/buildah-cold.json" \
    "${bh[*]} bud -q --isolation chroot --layers=false -t bench $w/ctx" >/dev/null
  "${bh[@]}" bud -q --isolation chroot --layers -t bench "$w/ctx" >/dev/null
  hyperfine --runs "$runs" --warmup 1 --export-json "$w/buildah-cached.json" \
    "${bh[*]} bud -q --isolation chroot --layers -t bench $w/ctx" >/dev/null
  hc=$(median "$w/buildah-cold.json")
  hw=$(median "$w/buildah-cached.json")
  printf '%-22s cold %8.3fs   cached %8.3fs\n' "buildah (vfs)" "$hc" "$hw"
  results+=("buildah / berth: cold $(ratio "$hc" "$bc_")x, cached $(ratio "$hw" "$bw_")x")
else
  echo "buildah not installed (apt-get install buildah): skipping it"
fi
for r in "${results[@]}"; do echo "$r"; done
