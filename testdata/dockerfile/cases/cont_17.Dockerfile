FROM a
COPY \
  --from=b \
  /x /y
