FROM a
COPY --x='a\b' x y
