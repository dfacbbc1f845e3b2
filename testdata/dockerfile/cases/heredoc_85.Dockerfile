FROM a
RUN <<E ${é}
x
E
