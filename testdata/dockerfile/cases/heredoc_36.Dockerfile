FROM a
RUN <<-"-"
-
