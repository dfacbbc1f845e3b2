FROM a
RUN <<EOF
x
EOF
RUN y
