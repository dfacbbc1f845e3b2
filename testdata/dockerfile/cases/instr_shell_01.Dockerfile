FROM base
SHELL /bin/bash -c
