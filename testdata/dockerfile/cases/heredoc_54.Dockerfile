FROM a
COPY --chmod=755 <<EOF /usr/bin/x
#!/bin/sh
EOF
