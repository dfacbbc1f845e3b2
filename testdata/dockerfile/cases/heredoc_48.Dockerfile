FROM a
RUN echo <<EOF \
# comment
body
EOF
