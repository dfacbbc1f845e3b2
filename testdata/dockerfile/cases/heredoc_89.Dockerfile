FROM a
RUN <<E ${á}
x
E
