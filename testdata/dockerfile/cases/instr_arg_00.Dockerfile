FROM base
ARG a
