FROM a
RUN a \

