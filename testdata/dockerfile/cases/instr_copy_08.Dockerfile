FROM base
COPY a b c d/
