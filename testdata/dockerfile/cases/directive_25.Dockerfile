# escape=`
ENV a=b` c d=e
