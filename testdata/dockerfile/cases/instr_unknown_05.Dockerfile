FROM base
123 abc
