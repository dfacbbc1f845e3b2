FROM base
LABEL maintainer="x <x@y>" version=1.0
