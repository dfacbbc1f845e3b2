# escape=x
RUN a
