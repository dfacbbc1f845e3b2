FROM a
LABEL a="multi\
  line"
