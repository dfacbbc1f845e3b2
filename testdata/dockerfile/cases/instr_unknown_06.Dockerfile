FROM base
=== x
