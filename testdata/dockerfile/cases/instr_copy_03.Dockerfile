FROM base
COPY --chown=u:g --chmod=755 a b
