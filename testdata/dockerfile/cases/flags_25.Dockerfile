FROM a
HEALTHCHECK --interval=1s --timeout="2 s" CMD x
