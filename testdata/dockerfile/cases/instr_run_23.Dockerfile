FROM base
RUN --flag-only
