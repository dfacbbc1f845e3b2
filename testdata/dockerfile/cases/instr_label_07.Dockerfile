FROM base
LABEL a=b c
