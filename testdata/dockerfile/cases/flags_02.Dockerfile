FROM a
COPY --x=à y z
