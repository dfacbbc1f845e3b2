FROM base
VOLUME ["/a" "/b"]
