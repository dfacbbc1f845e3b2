#!/usr/bin/env bash
# Equivalence of RUN with docker's BuildKit on realistic multi-stage
# Dockerfiles over busybox and Debian bookworm minbase (no network needed):
# both builders build each case; the final file systems (paths, types,
# modes, owners, file contents, symlink targets; not mtimes) and the image
# configs (Env, Cmd, Entrypoint, WorkingDir, User, Labels, history) must
# match. Exits non-zero on any difference and prints them.
#
# The busybox case also runs in the test suite
# (crates/cli/tests/build_run_equivalence.rs); this script adds Debian,
# whose fixture takes about a minute to make the first time (cached).
#
# Docker's built-in BuildKit is 0.8 (Debian's docker.io 20.10): no heredocs,
# and it leaves the empty directories it creates as mount targets in the
# image, so the cases mount only on directories the bases have.
#
# Usage: scripts/equivalence/run-vs-buildkit.sh
# Needs: docker.io (dockerd), debootstrap (installed by the fixture script).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -q -p berth-cli
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
w=$(mktemp -d /var/tmp/berth-equivalence.XXXXXX)
. scripts/lib/dockerd.sh
cleanup() {
  stop_dockerd
  rm -rf "$w" 2>/dev/null || true
}
trap cleanup EXIT
export BERTH_ROOT=$w/store

BERTH="$berth" scripts/make-busybox-image.sh >/dev/null
debian_tar=$(scripts/fixtures/debian-minbase.sh)
"$berth" import "$debian_tar" debian:bookworm \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' >/dev/null

start_dockerd "$w"
docker=/usr/bin/docker
"$berth" save busybox:latest debian:bookworm | $docker load >/dev/null

mkdir -p "$w/busybox" "$w/debian"
cat >"$w/busybox/Dockerfile" <<'DF'
FROM busybox AS build
RUN mkdir -p /out/sub && echo built > /out/artifact && chmod 640 /out/artifact && ln -s artifact /out/link && touch /out/sub/empty && chmod 1777 /out/sub
FROM busybox
ARG A=1
ENV B=2
WORKDIR /app
COPY --from=build /out /app/out
RUN --mount=type=cache,target=/var/tmp echo $A$B > /app/ab && rm /bin/vi && rm -r /home/app && echo 'bob:x:1234:1234::/home/bob:/bin/sh' >> /etc/passwd && mkdir -p /home/bob && chown 1234:1234 /home/bob /app/ab
RUN --mount=type=bind,from=build,source=/out,target=/root cat /root/artifact > /app/copied && mkfifo /app/fifo && ln /app/copied /app/hardlink
RUN --mount=type=tmpfs,target=/tmp echo gone > /tmp/x && echo kept > /app/kept
RUN rm -rf /app/out/sub && mkdir /app/out/sub && echo new > /app/out/sub/new
USER bob
RUN id > /home/bob/id && echo $HOME $A $B > /home/bob/env
CMD ["sh"]
DF
cat >"$w/debian/Dockerfile" <<'DF'
FROM debian:bookworm AS build
RUN mkdir -p /opt/app/bin && printf '#!/bin/sh\necho app\n' > /opt/app/bin/app && chmod 755 /opt/app/bin/app
RUN --mount=type=cache,target=/var/cache/apt echo cached > /var/cache/apt/marker && ls /var/cache/apt > /opt/app/cache-list
FROM debian:bookworm
ARG VERSION=1.2.3
ENV APP_VERSION=$VERSION LANG=C.UTF-8
COPY --from=build /opt/app /opt/app
RUN useradd -m -u 1500 -s /bin/bash builder && install -d -o builder -g builder -m 0750 /srv/data && touch /srv/data/.keep && ln -s /opt/app/bin/app /usr/local/bin/app
RUN rm -rf /usr/share/doc/* /usr/share/man /var/log/apt && dpkg-divert --local --rename --add /usr/bin/which >/dev/null && ln -s /opt/app/bin/app /usr/bin/which
RUN --mount=type=bind,from=build,source=/opt/app,target=/mnt cp -a /mnt /opt/copy && chmod u+s /opt/copy/bin/app && mkfifo /srv/fifo && ln /opt/copy/bin/app /opt/copy/bin/app-link
RUN --mount=type=tmpfs,target=/tmp echo scratch > /tmp/s && sed -i 's/^#\s*alias ll/alias ll/' /etc/skel/.bashrc && update-alternatives --install /usr/bin/pager-test pager-test /bin/cat 10 >/dev/null && rm /var/log/alternatives.log
USER builder
WORKDIR /home/builder/work
RUN echo "$HOME $(id -un) $APP_VERSION" > whoami && mkdir -p ../.config && echo x > ../.config/y && rm ../.bash_logout
ENTRYPOINT ["/opt/app/bin/app"]
CMD ["--help"]
DF

status=0
for case in busybox debian; do
  $docker build -q --network none -t "eq-$case" "$w/$case" >/dev/null
  $docker save -o "$w/$case-docker.tar" "eq-$case"
  if ! "$berth" build -q -t "eq-$case" "$w/$case" >/dev/null; then
    echo "$case: berth's build failed (docker's succeeded)"
    status=1
    continue
  fi
  "$berth" save -o "$w/$case-berth.tar" "eq-$case"
  python3 - "$case" "$w/$case-docker.tar" "$w/$case-berth.tar" <<'PY' || status=1
import gzip, hashlib, io, json, sys, tarfile

def image(path):
    t = tarfile.open(path)
    m = json.load(t.extractfile("manifest.json"))[0]
    config = json.load(t.extractfile(m["Config"]))
    fs = {}

    def drop_below(p):
        # Only a directory has entries below it.
        if fs.get(p, ("",))[0] == "dir":
            prefix = p + "/"
            for k in [k for k in fs if k.startswith(prefix)]:
                del fs[k]

    for layer in m["Layers"]:
        data = t.extractfile(layer).read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        lt = tarfile.open(fileobj=io.BytesIO(data))
        for e in lt:
            name = e.name.lstrip("./").rstrip("/")
            d, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                prefix = d + "/"
                for k in [k for k in fs if k.startswith(prefix)]:
                    del fs[k]
                continue
            if base.startswith(".wh."):
                gone = (d + "/" if d else "") + base[4:]
                drop_below(gone)
                fs.pop(gone, None)
                continue
            if not e.isdir():
                drop_below(name)
            if e.isfile():
                what = "file " + hashlib.sha256(lt.extractfile(e).read()).hexdigest()
            elif e.isdir():
                what = "dir"
            elif e.issym():
                what = "symlink " + e.linkname
            elif e.islnk():
                what = fs.get(e.linkname.lstrip("./"), ("?",))[0]
            else:
                what = "type " + e.type.decode()
            fs[name] = (what, e.mode & 0o7777, e.uid, e.gid)
    return config, fs

case, theirs, ours = sys.argv[1:]
tc, tf = image(theirs)
oc, of = image(ours)
diff = []
for p in sorted(set(tf) | set(of)):
    if tf.get(p) != of.get(p):
        diff.append(f"  {p}: docker {tf.get(p)} / berth {of.get(p)}")
for k in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels"]:
    if tc["config"].get(k) != oc["config"].get(k):
        diff.append(f"  config.{k}: docker {tc['config'].get(k)} / berth {oc['config'].get(k)}")
th = [h.get("created_by") for h in tc["history"]]
oh = [h.get("created_by") for h in oc["history"]]
if th != oh:
    diff.append(f"  history: docker {th}\n           berth  {oh}")
if diff:
    print(f"{case}: {len(diff)} differences")
    print("\n".join(diff[:200]))
    sys.exit(1)
print(f"{case}: identical ({len(of)} paths)")
PY
done
exit $status
