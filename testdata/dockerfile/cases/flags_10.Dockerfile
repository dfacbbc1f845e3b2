FROM a
COPY --=x y z
