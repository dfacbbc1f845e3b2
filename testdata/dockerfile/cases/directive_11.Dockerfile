# comment
# escape=`
RUN a `
b
