FROM a
RUN ["a\\b", "c\/d", "\b\f\n\r\t"]
