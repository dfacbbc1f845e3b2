FROM base
FROM-x y
