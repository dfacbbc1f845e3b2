FROM a
COPY --x
