FROM base
ENV "a"=b
