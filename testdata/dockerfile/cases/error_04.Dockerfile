FROM a
COPY <<A <<B /x
a
A
