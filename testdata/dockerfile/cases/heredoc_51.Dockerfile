FROM a
RUN <<EOF
RUN inner
EOF
RUN after
