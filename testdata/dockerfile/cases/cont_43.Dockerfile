FROM a
RUN x


