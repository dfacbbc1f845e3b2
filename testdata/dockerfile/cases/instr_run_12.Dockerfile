FROM base
RUN ["a"] trailing words
