FROM base
SHELL ["a"] x
