# escape=`
RUN a `
b
