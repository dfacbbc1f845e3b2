FROM base
COPY --exclude=*.md . /app
