FROM base
COPY --from="a b" x y
