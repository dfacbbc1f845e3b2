# escape=`
FROM a
RUN echo `
  hi
