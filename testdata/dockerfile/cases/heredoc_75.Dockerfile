FROM a
RUN <<EOF &&\
  echo x
body
EOF
