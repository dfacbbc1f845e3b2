FROM base
ENTRYPOINT [true]
