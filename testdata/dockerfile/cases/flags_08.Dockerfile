FROM a
COPY --x= x y
