#syntax=x
#escape=`
#escape=\
RUN a
