FROM a
RUN <<E ${a٣}
x
E
