FROM a
RUN <<A <<B
a
A
b
B
RUN x
