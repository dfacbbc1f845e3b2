# escape=`
ARG a=`"b
