FROM base
HEALTHCHECK CMD curl -f http://x/
