FROM base
ONBUILD RUN ["a"]
