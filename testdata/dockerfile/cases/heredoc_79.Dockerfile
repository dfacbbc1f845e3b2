# escape=`
FROM a
RUN <<EOF `
  && echo
x
EOF
