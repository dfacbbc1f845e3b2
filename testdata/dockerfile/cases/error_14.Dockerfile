FROM a
LABEL a=1 "b c"
