FROM a
ADD <<EOF /x
y
EOF
