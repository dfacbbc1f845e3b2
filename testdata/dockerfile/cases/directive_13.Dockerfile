  # escape=`
RUN a `
b
