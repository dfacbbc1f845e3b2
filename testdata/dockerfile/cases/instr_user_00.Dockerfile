FROM base
USER app
