FROM a
RUN cat <<EOF > /x
hello
EOF
