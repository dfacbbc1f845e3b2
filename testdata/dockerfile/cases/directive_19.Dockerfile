# x=y
# escape=`
RUN a `
b
