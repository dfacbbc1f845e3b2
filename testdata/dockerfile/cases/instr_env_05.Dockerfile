FROM base
ENV a
