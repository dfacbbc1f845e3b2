FROM a
RUN <<EOF
line \
EOF
