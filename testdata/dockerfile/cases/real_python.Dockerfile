FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Install deps
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
HEALTHCHECK --interval=30s --timeout=3s \
  CMD curl -f http://localhost:8000/health || exit 1
LABEL org.opencontainers.image.title="app" \
      org.opencontainers.image.version="1.0"
CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
