FROM a
RUN ["a", 1]
