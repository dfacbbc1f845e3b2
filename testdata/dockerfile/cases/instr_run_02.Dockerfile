FROM base
RUN
