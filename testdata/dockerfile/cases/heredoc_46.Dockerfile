FROM a
RUN --mount=type=cache,target=/x <<EOF
make
EOF
