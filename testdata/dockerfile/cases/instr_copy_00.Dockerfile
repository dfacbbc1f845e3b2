FROM base
COPY a b
