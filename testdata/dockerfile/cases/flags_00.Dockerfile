FROM a
COPY --from=a --chown=b:c --chmod=0755 --link x y
