FROM a
RUN ["\x"]
