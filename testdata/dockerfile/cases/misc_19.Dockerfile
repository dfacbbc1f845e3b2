FROM a
ENV a ""
