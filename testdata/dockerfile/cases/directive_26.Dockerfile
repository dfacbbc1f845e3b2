# escape=`
LABEL a="b`"c" d=e
