FROM base
RUN echo hi
