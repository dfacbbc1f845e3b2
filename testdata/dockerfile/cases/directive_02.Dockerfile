#escape=`
RUN a \
b
