FROM base
LABEL a=b c=d
