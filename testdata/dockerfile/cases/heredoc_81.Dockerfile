# escape=`
FROM a
RUN <<E\OF
x
EOF
