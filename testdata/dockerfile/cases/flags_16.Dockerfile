FROM a
COPY --x --
