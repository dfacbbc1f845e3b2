FROM a
RUN echo 😀
