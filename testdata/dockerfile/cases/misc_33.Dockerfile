FROM a
USER ["a"]
