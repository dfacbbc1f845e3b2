FROM a
RUN a \
# only comment after
