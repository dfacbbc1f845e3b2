FROM base
RUN ["a",]
