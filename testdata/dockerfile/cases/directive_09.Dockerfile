# escape= 
RUN a
