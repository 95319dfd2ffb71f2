# QTS in one container: supervisord runs every service (see supervisord.conf).
# Build: docker build -t qts:latest .   Run: docker run -d --env-file .env -v qts-var:/app/var qts:latest
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 qts
WORKDIR /app

COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY services ./services
COPY config ./config
COPY supervisord.conf ./

RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir . \
    && mkdir -p /app/var/run /app/var/log /app/var/state \
    && chown -R qts:qts /app/var

USER qts
VOLUME ["/app/var"]

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/app/.venv/bin/qts-ctl", "status"]

CMD ["/app/.venv/bin/supervisord", "-n", "-c", "/app/supervisord.conf"]
