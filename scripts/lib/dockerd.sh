# Sourced by the benchmark and equivalence scripts: a private dockerd (its
# own data root, socket and exec root under a work directory) whose
# BuildKit the scripts compare berth with.
#
#   start_dockerd DIR   starts it under DIR, exports DOCKER_HOST and
#                       DOCKER_BUILDKIT=1, sets dockerd_pid, waits until it
#                       answers (fails after 30 s with its log);
#   stop_dockerd        stops it (for the caller's EXIT trap).

dockerd_pid=

start_dockerd() {
  local dir=$1
  mkdir -p "$dir/docker" "$dir/exec"
  dockerd --host "unix://$dir/docker.sock" --data-root "$dir/docker" --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" --storage-driver overlay2 --iptables=false --bridge=none \
    >"$dir/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST="unix://$dir/docker.sock" DOCKER_BUILDKIT=1
  for _ in $(seq 150); do
    /usr/bin/docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "dockerd did not start:" >&2
  tail -20 "$dir/dockerd.log" >&2
  return 1
}

stop_dockerd() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=
  fi
}
