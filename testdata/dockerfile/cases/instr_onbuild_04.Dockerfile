FROM base
ONBUILD COPY --from=a b c
