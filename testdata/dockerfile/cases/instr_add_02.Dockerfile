FROM base
ADD --chown=1:1 --chmod=644 a b
