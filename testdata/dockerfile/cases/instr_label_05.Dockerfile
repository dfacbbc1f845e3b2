FROM base
LABEL a
