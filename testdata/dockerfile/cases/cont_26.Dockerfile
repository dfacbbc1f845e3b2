FROM a
# comment
  # indented comment
RUN x # not a comment
