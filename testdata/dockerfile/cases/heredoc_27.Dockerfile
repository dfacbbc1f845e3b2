FROM a
RUN cat<<EOF
x
EOF
