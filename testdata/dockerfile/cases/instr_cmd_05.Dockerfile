FROM base
cmd ["x"]
