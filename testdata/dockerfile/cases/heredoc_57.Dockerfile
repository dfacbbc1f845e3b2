FROM a
RUN <<A
a
A
A
