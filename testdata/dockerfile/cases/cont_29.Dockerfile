FROM a
RUN a \
#c1
#c2

  b \
  # c3
  c
