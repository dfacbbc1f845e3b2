FROM base
RUN -x
