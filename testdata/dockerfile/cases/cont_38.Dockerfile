FROM a
 RUN x
