FROM base
RUN ["a", {"k": 1}]
