FROM base
ONBUILD   ADD   a   b
