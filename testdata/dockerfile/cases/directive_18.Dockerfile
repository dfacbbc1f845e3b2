# escape=``
RUN a
