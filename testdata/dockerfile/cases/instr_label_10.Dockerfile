FROM base
LABEL a=
