RUN a
# escape=`
RUN b `
c
