# escape = ` 
RUN a `
b
