FROM base
COPY --from='q' x y
