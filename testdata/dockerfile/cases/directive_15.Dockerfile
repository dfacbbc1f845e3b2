#  escape  =  `  
RUN a `
b
