# escape=`
# escape=`
RUN a
