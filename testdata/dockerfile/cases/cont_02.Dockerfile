FROM a
RUN a \
# comment
  b
