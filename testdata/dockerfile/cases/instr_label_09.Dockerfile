FROM base
LABEL =b
