FROM base
RUN [1,]
