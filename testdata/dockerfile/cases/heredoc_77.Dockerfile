FROM a
RUN <<'a'b'c'
x
abc
