FROM a
RUN echo '#not comment'
