FROM a
COPY --x="a b"c x y
