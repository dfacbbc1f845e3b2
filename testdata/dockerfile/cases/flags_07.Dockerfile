FROM a
COPY --x=a\ x y
