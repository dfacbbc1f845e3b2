FROM a
RUN <<E'O
x
