# escape=\\
RUN a
