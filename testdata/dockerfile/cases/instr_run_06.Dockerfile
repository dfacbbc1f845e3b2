FROM base
RUN ["a" "b"]
