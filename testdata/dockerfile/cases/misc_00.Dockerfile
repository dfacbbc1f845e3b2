from a
run x
copy a b
env a=b
