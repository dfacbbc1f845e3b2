FROM a
ONBUILD --a=b --c COPY --d=e f g
