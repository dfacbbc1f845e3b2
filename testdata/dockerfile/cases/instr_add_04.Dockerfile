FROM base
ADD --keep-git-dir=true git@x:y /z
