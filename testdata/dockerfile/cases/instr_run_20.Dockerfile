FROM base
RUN --mount=type=secret,id=x,required cat /run/secrets/x
