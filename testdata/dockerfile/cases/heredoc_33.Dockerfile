FROM a
RUN <<""
x
