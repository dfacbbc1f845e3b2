FROM a AS b
FROM b AS c
COPY --from=b /x /y
