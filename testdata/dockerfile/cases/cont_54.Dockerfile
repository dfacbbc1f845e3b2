FROM a
RUN a \
  # c \
  b
