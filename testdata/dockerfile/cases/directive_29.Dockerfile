# 1escape=`
RUN a `
b
