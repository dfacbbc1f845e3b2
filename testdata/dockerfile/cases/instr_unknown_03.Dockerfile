FROM base
COPPY a b
