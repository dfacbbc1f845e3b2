FROM a
RUN <<-
x
