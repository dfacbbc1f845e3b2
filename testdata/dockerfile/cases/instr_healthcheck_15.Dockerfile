FROM base
HEALTHCHECK x   [] z
