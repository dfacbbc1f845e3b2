FROM base
HEALTHCHECK --interval=5s --timeout=3s CMD ["a", "b"]
