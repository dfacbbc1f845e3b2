#!/usr/bin/env bash
# Times `berth build` against docker's BuildKit (dockerd started by hand, its
# built-in BuildKit) and buildah when installed, on one COPY-heavy
# multistage Dockerfile over the same busybox base:
#
#   FROM busybox AS a          COPY files/a/ /data/a/      (FILES/2 files)
#   FROM busybox AS b          COPY files/b/ /data/b/      (FILES/2 files)
#   FROM busybox               COPY --from=a ... ; COPY --from=b ... ; COPY app.txt
#
# Two numbers per tool:
#   cold   - empty build cache (berth: a fresh store holding busybox;
#            docker: `builder prune -af`; buildah: --layers=false), warm page cache;
#   cached - nothing changed and the cache is warm (berth's context hash
#            cache too): the CI rebuild case.
# The machine is shared and noisy, so the tools take turns: each round runs
# every tool once (hyperfine --runs 1, preparation untimed) and the medians
# over ROUNDS rounds are compared. Prints the ratios tool/berth (above 1:
# berth is faster).
#
# Usage: scripts/bench/build.sh [FILES] [ROUNDS]   (default 10000 files, 5 rounds)
# Needs: hyperfine, docker.io (dockerd); buildah optional (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:-10000}
rounds=${2:-5}
cargo build --release --locked -q -p berth-cli
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
w=$(mktemp -d /var/tmp/berth-build-bench.XXXXXX)
. scripts/lib/dockerd.sh
cleanup() {
  stop_dockerd
  if [ -d "$w/buildah" ]; then
    buildah --root "$w/buildah" --runroot "$w/buildah-run" --storage-driver overlay \
      rmi -af >/dev/null 2>&1 || true
  fi
  # Whatever dockerd or buildah left mounted below $w, deepest first.
  awk -v w="$w" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf "$w"
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

# Each tool: a name, a command to prepare a cold run, the build command.
names=() prepares=() commands=()

BERTH="$berth" BERTH_ROOT="$w/store0" scripts/make-busybox-image.sh >/dev/null
names+=(berth)
prepares+=("rm -rf $w/store && cp -a $w/store0 $w/store")
commands+=("$berth --root $w/store build -q -t bench $w/ctx")

if command -v dockerd >/dev/null; then
  start_dockerd "$w"
  "$berth" --root "$w/store0" save busybox:latest | /usr/bin/docker load >/dev/null
  names+=("docker BuildKit")
  prepares+=("/usr/bin/docker builder prune -af >/dev/null")
  commands+=("/usr/bin/docker build -q -t bench $w/ctx")
else
  echo "dockerd not installed (apt-get install docker.io): skipping BuildKit"
fi

# buildah (overlay storage, chroot isolation: COPY needs no runtime), with
# its own containers.conf so the machine's is not needed (../shared/FACTS.md).
if command -v buildah >/dev/null; then
  printf '%s\n' '[containers]' 'default_ulimits = ["nofile=20000:20000"]' '[engine]' \
    'runtime = "runc"' 'cgroup_manager = "cgroupfs"' 'events_logger = "file"' \
    '[network]' 'network_backend = "netavark"' >"$w/containers.conf"
  export CONTAINERS_CONF="$w/containers.conf"
  bh="buildah --root $w/buildah --runroot $w/buildah-run --storage-driver overlay"
  "$berth" --root "$w/store0" save --format oci -o "$w/bb-oci.tar" busybox:latest
  $bh pull -q "oci-archive:$w/bb-oci.tar" >/dev/null
  names+=("buildah (overlay)")
  # Cold: --layers=false neither reads nor writes the layer cache.
  prepares+=("true")
  commands+=("$bh bud -q --isolation chroot --layers=false -t bench $w/ctx")
  buildah_cached="$bh bud -q --isolation chroot --layers -t bench $w/ctx"
else
  echo "buildah not installed (apt-get install buildah): skipping it"
fi

# One timed run (seconds) of $2 after untimed preparation $1.
once() {
  hyperfine --runs 1 --prepare "$1" --export-json "$w/one.json" "$2" >/dev/null 2>&1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$w/one.json"
}
median() { python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))' "$@"; }

n=${#names[@]}
declare -A cold cached
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    cold[$i]+=" $(once "${prepares[$i]}" "${commands[$i]}")"
  done
done
# Cached: one build to fill the cache, then rounds of unchanged rebuilds.
for ((i = 0; i < n; i++)); do
  c=${commands[$i]}
  [ "${names[$i]}" = "buildah (overlay)" ] && c=$buildah_cached
  eval "$c" >/dev/null
  cmds[$i]=$c
done
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    cached[$i]+=" $(once true "${cmds[$i]}")"
  done
done
for ((i = 0; i < n; i++)); do
  mc[$i]=$(median ${cold[$i]})
  mw[$i]=$(median ${cached[$i]})
  printf '%-20s cold %7.3fs   cached %7.3fs   (medians of %d)\n' "${names[$i]}" "${mc[$i]}" "${mw[$i]}" "$rounds"
done
for ((i = 1; i < n; i++)); do
  python3 -c 'import sys; n,a,b,c,d = sys.argv[1:]; print("%s / berth: cold %.2fx, cached %.2fx" % (n, float(a)/float(b), float(c)/float(d)))' \
    "${names[$i]}" "${mc[$i]}" "${mc[0]}" "${mw[$i]}" "${mw[0]}"
done
