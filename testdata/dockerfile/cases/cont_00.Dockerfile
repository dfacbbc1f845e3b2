FROM a
RUN a \
  b \
  c
