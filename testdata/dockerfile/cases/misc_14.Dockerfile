FROM a
LABEL ""=""
