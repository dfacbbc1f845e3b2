FROM a
RUN ["a", 1e5, true, false]
