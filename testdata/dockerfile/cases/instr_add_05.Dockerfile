FROM base
ADD --checksum=sha256:abc https://x /y
