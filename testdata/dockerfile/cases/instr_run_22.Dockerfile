FROM base
RUN --
