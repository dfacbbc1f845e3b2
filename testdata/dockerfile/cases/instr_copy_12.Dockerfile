FROM base
COPY --a="x\"y" a b
