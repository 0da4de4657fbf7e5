# The sync service: CLI and daemon.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# Not "sync": Debian's base-passwd already has a user of that name (uid 4), and useradd exits 9.
# /app/data and /app/logs are the only places the app user writes (named volumes in Compose).
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /app/data /app/logs \
    && chown app:app /app/data /app/logs

COPY --chown=app:app sync_service ./sync_service
COPY --chown=app:app mock_api ./mock_api
COPY --chown=app:app scripts ./scripts
# scripts/init_stack.py (the Compose init job) seeds the bucket with devtools' seed_folder.
COPY --chown=app:app devtools ./devtools
COPY --chown=app:app test-data ./test-data

# The s3-sync command. Editable: it runs the code in /app/sync_service, which Compose replaces
# with the host's folder for live reload; the dependencies are the layer above.
COPY pyproject.toml .
RUN pip install --no-cache-dir --no-deps --editable . \
    && s3-sync --version

USER 10001
EXPOSE 9090
# Liveness (the daemon's loop turns), not readiness: see sync_service/healthcheck.py.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "sync_service.healthcheck", "/livez"]
CMD ["s3-sync", "daemon"]
