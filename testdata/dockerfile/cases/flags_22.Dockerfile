FROM a
ADD --chown=1 --chmod=2 --checksum=sha256:x --keep-git-dir --link https://a /b
