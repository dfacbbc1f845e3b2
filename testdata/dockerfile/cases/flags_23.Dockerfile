FROM a
RUN --a b x
