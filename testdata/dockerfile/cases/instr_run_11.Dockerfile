FROM base
RUN ['single']
