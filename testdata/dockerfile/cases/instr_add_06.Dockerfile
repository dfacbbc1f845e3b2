FROM base
ADD --unpack=false a b
