FROM base
FOO bar
