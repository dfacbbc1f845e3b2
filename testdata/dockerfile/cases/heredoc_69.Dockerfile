FROM a
COPY --from=x <<EOF /y
z
EOF
