FROM a
ENV a=1 b
