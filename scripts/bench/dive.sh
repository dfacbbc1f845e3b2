#!/usr/bin/env bash
# Times `berth dive --ci` on a large generated image and reports its peak
# memory (max RSS, from /usr/bin/time -v). dive itself cannot be installed
# here, so this prints berth's numbers only.
#
# The image (docker-archive, 4 uncompressed layers):
#   0  FILES files of SIZE bytes in 100 directories (the bulk)
#   1  10% of them rewritten with the same data (duplicates)
#   2  5% of them again with mode 0755 (chmod-only copies)
#   3  a whiteout of 10% of the directories (rm -rf)
# It is analysed straight from the archive and from the store after
# `berth load` (where the layers stay uncompressed, as loaded).
#
# Usage: scripts/bench/dive.sh [FILES] [SIZE]   (default 100000 files of 10000 bytes: ~1.1 GB)
# Needs: python3, /usr/bin/time (Debian package `time`).
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:-100000}
size=${2:-10000}
cargo build --release --locked -q -p berth-cli
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
w=$(mktemp -d /var/tmp/berth-dive-bench.XXXXXX)
trap 'rm -rf "$w"' EXIT

python3 - "$w/image.tar" "$files" "$size" <<'PY'
import hashlib, io, json, sys, tarfile
out, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dirs = 100
def body(i):
    head = b"%08d" % i
    return (head * (size // len(head) + 1))[:size]
class Layer:
    """A layer tar written to a temporary file, hashed as it is written."""
    def __init__(self, path):
        self.path = path
        self.tar = tarfile.open(path, "w", format=tarfile.GNU_FORMAT)
    def dir(self, name):
        ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
        self.tar.addfile(ti)
    def file(self, name, data, mode=0o644):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode
        self.tar.addfile(ti, io.BytesIO(data))
    def close(self):
        self.tar.close()
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
def name(i):
    return "data/d%03d/f%06d" % (i % dirs, i)
layers = []
l = Layer(out + ".0"); l.dir("data/")
for d in range(dirs): l.dir("data/d%03d/" % d)
for i in range(files): l.file(name(i), body(i))
layers.append(l.close())
l = Layer(out + ".1")
for i in range(0, files, 10): l.file(name(i), body(i))
layers.append(l.close())
l = Layer(out + ".2")
for i in range(1, files, 20): l.file(name(i), body(i), 0o755)
layers.append(l.close())
l = Layer(out + ".3")
for d in range(0, dirs, 10): l.file("data/.wh.d%03d" % d, b"")
layers.append(l.close())
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h for h in layers]},
    "history": [{"created_by": c} for c in ["ADD data /data", "COPY again", "RUN chmod", "RUN rm -rf"]],
}).encode()
cname = hashlib.sha256(config).hexdigest() + ".json"
with tarfile.open(out, "w") as t:
    names = []
    for i, h in enumerate(layers):
        n = h + "/layer.tar"; names.append(n)
        t.add(out + ".%d" % i, arcname=n)
    for n, data in [(cname, config), ("manifest.json", json.dumps([{"Config": cname, "RepoTags": ["bench:dive"], "Layers": names}]).encode())]:
        ti = tarfile.TarInfo(n); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
PY
rm -f "$w"/image.tar.[0-9]
echo "image: $files files, $(du -h "$w/image.tar" | cut -f1) docker-archive, 4 layers"

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" >"$w/out.txt" 2>"$w/time.txt" || true
  grep -qE "Result:|^$" "$w/out.txt" && cp "$w/out.txt" "$w/report.txt" 
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$w/time.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$w/time.txt" | awk '{print $NF}')
  printf '%-34s wall %8s   max RSS %6d MiB\n' "$label" "$wall" $((rss / 1024))
}
measure "dive --ci (docker-archive)" "$berth" --root "$w/store" dive --ci --source docker-archive "$w/image.tar"
"$berth" --root "$w/store" load -q -i "$w/image.tar" >/dev/null
measure "dive --ci (store)" "$berth" --root "$w/store" dive --ci bench:dive
measure "dive --json (store)" "$berth" --root "$w/store" dive --json "$w/analysis.json" bench:dive
grep -E "efficiency|wastedBytes" "$w/report.txt" || true
echo "(dive itself is not installable here; compare on a machine that has dive 0.9+: dive --ci docker-archive://IMAGE)"
