FROM a
RUN ["a"]]
