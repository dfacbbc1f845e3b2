FROM base
ENV a=b c=d
