FROM a
COPY --x\
