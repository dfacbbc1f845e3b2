FROM a
RUN <<"E F"
x
E F
