FROM base
ENTRYPOINT ["/bin/sh", "-c"]
