FROM a
COPY --from=é x y
