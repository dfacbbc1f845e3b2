FROM a
\
\
RUN x
