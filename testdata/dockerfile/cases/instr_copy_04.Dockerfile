FROM base
COPY --link --parents a/b c/
