FROM a
RUN x
