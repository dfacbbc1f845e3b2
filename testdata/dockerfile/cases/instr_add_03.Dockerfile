FROM base
ADD https://x/y.tgz /z
