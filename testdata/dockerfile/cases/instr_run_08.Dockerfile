FROM base
RUN ["a", 1]
