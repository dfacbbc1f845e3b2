FROM a
RUN <<EOF ${A:-b c}
x
EOF
