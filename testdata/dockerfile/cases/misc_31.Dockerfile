FROM a
VOLUME ["/a", 2]
