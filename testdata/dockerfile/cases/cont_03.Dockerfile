FROM a
RUN a \
    # indented comment
  b
