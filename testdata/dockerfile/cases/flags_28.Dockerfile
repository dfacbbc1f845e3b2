FROM a
COPY --a=b\"c d e
