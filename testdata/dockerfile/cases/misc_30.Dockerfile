FROM a
RUN  ["a"]
