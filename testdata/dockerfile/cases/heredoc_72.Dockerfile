FROM a
RUN <<EOF
unicode ✓ ü
EOF
