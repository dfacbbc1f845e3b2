FROM base
HEALTHCHECK --start-period=1s --start-interval=1s CMD x
