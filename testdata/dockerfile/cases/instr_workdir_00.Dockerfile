FROM base
WORKDIR /app
