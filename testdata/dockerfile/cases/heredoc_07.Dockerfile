FROM a
COPY <<EOF /dst
content
EOF
