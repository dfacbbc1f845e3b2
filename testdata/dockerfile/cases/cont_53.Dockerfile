FROM a

# trailing comment