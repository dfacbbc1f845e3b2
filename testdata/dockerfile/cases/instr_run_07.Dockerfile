FROM base
RUN [ ]
