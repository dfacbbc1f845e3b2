FROM base
RUN ["a", null]
