FROM base
COPY --chown="" a b
