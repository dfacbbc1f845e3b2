FROM a
RUN x \
FROM b
