FROM base
WORKDIR a b c
