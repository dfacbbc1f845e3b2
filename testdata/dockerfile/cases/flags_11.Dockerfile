FROM a
COPY -- x y
