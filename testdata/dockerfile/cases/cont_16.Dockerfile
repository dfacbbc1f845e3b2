FROM a
RUN \
  --mount=type=cache,target=/x \
  make
