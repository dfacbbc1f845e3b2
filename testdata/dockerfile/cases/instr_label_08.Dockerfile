FROM base
LABEL a==b
