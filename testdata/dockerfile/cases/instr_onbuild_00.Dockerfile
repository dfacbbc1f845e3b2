FROM base
ONBUILD RUN echo hi
