# The sync service: CLI and daemon.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home --uid 10001 sync \
    && mkdir -p /app/data /app/logs \
    && chown sync:sync /app/data /app/logs

COPY --chown=sync:sync sync_service ./sync_service
COPY --chown=sync:sync mock_api ./mock_api
COPY --chown=sync:sync scripts ./scripts
COPY --chown=sync:sync test-data ./test-data

USER 10001
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "sync_service.healthcheck"]
CMD ["python", "-m", "sync_service.main", "daemon"]
