ARG V=1
FROM a:${V}
ARG V
RUN echo $V
