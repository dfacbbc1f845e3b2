FROM a
RUN <<EO${Aé-b}
x
EO${Aé-b}
