#
# escape=`
RUN a `
b
