# escape=`
RUN echo \
RUN b
