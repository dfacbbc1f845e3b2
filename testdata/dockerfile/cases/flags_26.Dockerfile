FROM a
FROM --platform="linux/amd64" b AS c
