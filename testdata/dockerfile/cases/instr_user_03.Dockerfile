FROM base
USER a b
