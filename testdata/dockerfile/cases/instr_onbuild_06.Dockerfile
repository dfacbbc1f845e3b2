FROM base
ONBUILD ENV a=b c=d
