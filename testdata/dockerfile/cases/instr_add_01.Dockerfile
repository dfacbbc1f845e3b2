FROM base
ADD ["a", "b"]
