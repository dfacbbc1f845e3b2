FROM base
ADD --link a b
