FROM a
RUN --x="a\
