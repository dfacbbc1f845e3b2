FROM base
RUN - echo
