FROM a
RUN <<EOF ${A-b}
x
EOF
