FROM a
RUN --mount=type=cache,id=x,sharing=locked,target=/var/cache/apt apt-get update
