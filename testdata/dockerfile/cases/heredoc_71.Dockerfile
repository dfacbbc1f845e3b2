FROM a
RUN <<é
x
é
