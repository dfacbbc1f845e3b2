FROM a
COPY --x=1	--y=2  a b
