FROM a
RUN <<''
x
