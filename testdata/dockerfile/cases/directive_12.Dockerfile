
# escape=`
RUN a `
b
