FROM a
COPY --x="unterminated x y
