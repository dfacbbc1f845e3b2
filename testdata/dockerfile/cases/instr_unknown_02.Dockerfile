FROM base
X
