FROM base
onbuild run x
