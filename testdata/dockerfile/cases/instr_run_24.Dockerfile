FROM base
RUN --a --b=c -- --d
