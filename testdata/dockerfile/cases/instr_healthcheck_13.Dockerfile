FROM base
HEALTHCHECK x 　 ["a"] y
