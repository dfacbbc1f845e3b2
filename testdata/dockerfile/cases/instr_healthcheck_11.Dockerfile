FROM base
HEALTHCHECK CMD ["a" "b"]
