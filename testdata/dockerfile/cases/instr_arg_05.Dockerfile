FROM base
ARG a= b=c
