FROM a
RUN a \ x
