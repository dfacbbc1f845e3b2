FROM base
ONBUILD RUN ["a", 1]
