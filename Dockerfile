# QTS in one container: supervisord runs every service (supervisord.conf) as a non-root user.
# Build: docker build -t qts:latest .
# Run:   docker compose -f deploy/docker-compose.yaml up -d   (volumes for config, logs, data)
# docs/deployment.md has install, upgrade and backup; docs/metrics.md the metrics endpoint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QTS_HOME=/app \
    QTS_SUPERVISORD_CONF=/app/supervisord.conf \
    PATH=/app/.venv/bin:$PATH

RUN groupadd --gid 10001 qts \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin qts

WORKDIR /app

COPY pyproject.toml README.md supervisord.conf ./
COPY protocol ./protocol
COPY services ./services
COPY config ./config
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/qts-entrypoint

# editable: the services run from /app (python -m services.X with directory=/app), and qts-ctl
# must import the same tree so that it finds /app/config and /app/var as they do
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir -e . \
    && mkdir -p /app/var/run /app/var/log /app/var/state /app/config/local \
    && chown -R 10001:10001 /app/var

USER 10001:10001

# data (var/state: journals, trading state, SQLite stores; var/broker; var/reports) and logs
# (var/log) outlive the container; config/local is mounted read-only by docker-compose.yaml
VOLUME ["/app/var", "/app/var/log"]

# /metrics and the dashboard (metrics.port); loopback unless QTS_METRICS__HOST says otherwise
EXPOSE 9470

# healthy while the supervisor answers `status` (whatever the trading state)
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/app/.venv/bin/qts-ctl", "status"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/qts-entrypoint"]
CMD ["/app/.venv/bin/supervisord", "-n", "-c", "/app/supervisord.conf"]
