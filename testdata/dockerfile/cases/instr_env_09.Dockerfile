FROM base
ENV a=
