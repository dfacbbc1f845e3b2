FROM a
RUN <<EOF \
  && echo more
body
EOF
