#!/usr/bin/env bash
# RUN steps: berth against docker's BuildKit (a dockerd started here) and
# buildah when installed, on the same busybox base, in one run so the
# numbers compare. Medians from hyperfine.
#
#   trivial    - 50 steps `RUN true`, cold: the sandbox's start-to-exit cost
#                per step is (time - time of the same file with no RUN) / 50;
#   multistage - two stages that make files with RUN, a final stage that
#                copies them and runs once more: cold (empty build cache)
#                and cached (nothing changed);
#   debian     - the same shape on a Debian bookworm minbase base (121 MB,
#                from scripts/fixtures/debian-minbase.sh): cold and cached.
#
# "Cold" means an empty build cache with the base images present, for every
# tool: berth `builder prune` (step records gone; the snapshots of images
# still in the store kept, as docker keeps its images' layers unpacked),
# `docker builder prune -af`, buildah `rmi -a` + re-pull.
# berth's first build on a brand-new store (base layers not yet extracted)
# is reported on its own line.
#
# Usage: scripts/bench/run.sh [RUNS]   (default 5)
# Needs: hyperfine, docker.io (dockerd); buildah optional.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
cargo build --release --locked -q -p berth-cli
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
w=$(mktemp -d /var/tmp/berth-run-bench.XXXXXX)
. scripts/lib/dockerd.sh
cleanup() {
  stop_dockerd
  rm -rf "$w" 2>/dev/null || true
}
trap cleanup EXIT

mkdir -p "$w/none" "$w/trivial" "$w/multi" "$w/debian"
echo "FROM busybox:latest" >"$w/none/Dockerfile"
{ echo "FROM busybox:latest"; for i in $(seq 50); do echo "RUN true"; done; } >"$w/trivial/Dockerfile"
cat >"$w/multi/Dockerfile" <<'EOF'
FROM busybox:latest AS a
RUN mkdir -p /out && for i in $(seq 200); do echo "file $i" > /out/a$i; done
RUN tar -cf /a.tar /out && rm -r /out
FROM busybox:latest AS b
RUN mkdir -p /out && for i in $(seq 200); do echo "file $i" > /out/b$i; done && ln -s b1 /out/link
FROM busybox:latest
COPY --from=a /a.tar /a.tar
COPY --from=b /out /b
RUN tar -xf /a.tar && rm /a.tar && ls -R / > /listing && adduser -D app 2>/dev/null || true
EOF

sed -e 's/^FROM busybox:latest/FROM debian:minbase/' \
  -e 's/adduser -D app 2>\/dev\/null || true/useradd -m app/' "$w/multi/Dockerfile" >"$w/debian/Dockerfile"

median() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"; }
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
per_step_ms() { python3 -c 'import sys; print("%.1f" % ((float(sys.argv[1]) - float(sys.argv[2])) * 1000 / 50))' "$1" "$2"; }

BERTH="$berth" BERTH_ROOT="$w/store0" scripts/make-busybox-image.sh >/dev/null
"$berth" --root "$w/store0" import "$(scripts/fixtures/debian-minbase.sh)" debian:minbase >/dev/null
# One tool: cold (fresh cache per run) and cached, for the three files.
# $1 name, $2 command prefix (the context is appended), $3 prepare for cold.
bench() {
  local name=$1 cmd=$2 prep=$3
  for f in none trivial multi debian; do
    hyperfine --runs "$runs" --warmup 1 --export-json "$w/$name-$f-cold.json" \
      --prepare "$prep" "$cmd $w/$f" >/dev/null
  done
  for f in multi debian; do
    $cmd "$w/$f" >/dev/null
    hyperfine --runs "$runs" --warmup 1 --export-json "$w/$name-$f-cached.json" \
      "$cmd $w/$f" >/dev/null
  done
  local n t
  n=$(median "$w/$name-none-cold.json")
  t=$(median "$w/$name-trivial-cold.json")
  printf '%-10s 50 RUNs %7.3fs (%5s ms/step)   multistage cold %7.3fs cached %7.3fs   debian cold %7.3fs cached %7.3fs\n' \
    "$name" "$t" "$(per_step_ms "$t" "$n")" \
    "$(median "$w/$name-multi-cold.json")" "$(median "$w/$name-multi-cached.json")" \
    "$(median "$w/$name-debian-cold.json")" "$(median "$w/$name-debian-cached.json")"
}
# "PEER / berth" ratios of the medians of one peer.
ratios() {
  local peer=$1 out="$1 / berth:" k
  for k in trivial-cold multi-cold multi-cached debian-cold debian-cached; do
    out="$out $k $(ratio "$(median "$w/$peer-$k.json")" "$(median "$w/berth-$k.json")")x"
  done
  results+=("$out")
}
results=()

cp -a "$w/store0" "$w/store"
bench berth "$berth --root $w/store build -q -t bench" "$berth --root $w/store builder prune >/dev/null"
hyperfine --runs "$runs" --export-json "$w/berth-first.json" \
  --prepare "rm -rf $w/first && cp -a $w/store0 $w/first" "$berth --root $w/first build -q -t bench $w/debian" >/dev/null
printf 'berth, first build on a new store (extracts the Debian base): %.3fs\n' "$(median "$w/berth-first.json")"

if command -v dockerd >/dev/null; then
  start_dockerd "$w"
  for img in busybox:latest debian:minbase; do
    "$berth" --root "$w/store0" save "$img" | /usr/bin/docker load >/dev/null
  done
  bench BuildKit "/usr/bin/docker build -q --network none -t bench" \
    "/usr/bin/docker builder prune -af >/dev/null"
  ratios BuildKit
else
  echo "dockerd not installed (apt-get install docker.io): skipping BuildKit"
fi

if command -v buildah >/dev/null; then
  bh="buildah --root $w/buildah --runroot $w/buildah-run --storage-driver overlay"
  for img in busybox:latest debian:minbase; do
    "$berth" --root "$w/store0" save --format oci -o "$w/${img%%:*}-oci.tar" "$img"
  done
  {
    echo "$bh rmi -a -f >/dev/null 2>&1 || true"
    echo "$bh tag \$($bh pull -q oci-archive:$w/busybox-oci.tar) busybox:latest"
    echo "$bh tag \$($bh pull -q oci-archive:$w/debian-oci.tar) debian:minbase"
  } >"$w/buildah-prep.sh"
  bash -e "$w/buildah-prep.sh"
  bench buildah "$bh bud -q --isolation oci --layers -t bench" "bash -e $w/buildah-prep.sh"
  ratios buildah
else
  echo "buildah not installed (apt-get install buildah): skipping it"
fi
for r in "${results[@]}"; do echo "$r"; done
