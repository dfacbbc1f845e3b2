# ESCAPE=`
RUN a `
b
