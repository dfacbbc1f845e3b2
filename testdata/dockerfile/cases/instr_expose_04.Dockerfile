FROM base
EXPOSE ["80"]
