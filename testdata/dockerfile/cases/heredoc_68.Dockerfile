FROM a
RUN --x=<<EOF y
x
