FROM base
ADD
