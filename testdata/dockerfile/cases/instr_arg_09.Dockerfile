FROM base
ARG a="x
