FROM base
ENV
