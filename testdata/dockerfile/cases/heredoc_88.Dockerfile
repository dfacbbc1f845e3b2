FROM a
RUN <<E $٣x ${٣}
x
E
