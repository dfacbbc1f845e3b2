FROM base
ARG a=$b
