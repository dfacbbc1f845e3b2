FROM a
RUN <<EOF
#!/bin/sh
echo hi
EOF
