FROM base
ARG
