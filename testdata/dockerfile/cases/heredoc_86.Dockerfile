FROM a
RUN <<E ${Ⅰ}
x
E
