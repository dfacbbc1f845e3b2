# syntax=docker/dockerfile:1
FROM debian:bookworm
RUN <<EOT bash
  set -ex
  apt-get update
  apt-get install -y vim
EOT
COPY <<-"EOT" /app/script.sh
	#!/bin/sh
	echo "hello ${NAME}"
	EOT
RUN <<EOF cat > /etc/config && <<EOF2 cat > /etc/other
a=1
EOF
b=2
EOF2
