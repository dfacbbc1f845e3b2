FROM base
ADD a
