# The sync service: CLI, daemon and workers. Two stages: the first installs the locked
# dependencies into a virtual environment; the second holds that environment and the service's
# code, nothing else (the mock API, the init job's script and test data have their own image,
# Dockerfile.mock-api).
FROM python:3.11-slim-bookworm AS dependencies

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

# requirements.lock: every package, transitive ones included, with the hashes of its files.
COPY requirements.lock /tmp/requirements.lock
# --without-pip: the base image's pip installs into it, and the runtime carries no pip or
# setuptools of its own (25 MB).
RUN python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes -r /tmp/requirements.lock

FROM python:3.11-slim-bookworm

# Bytecode is compiled below, at build time; at run time Python reads it and writes none (the
# code is read-only to the app user, and the live reload mount is the host's folder).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

# Not "sync": Debian's base-passwd already has a user of that name (uid 4), and useradd exits 9.
# /app/data and /app/logs are the only places the app user writes (named volumes in Compose).
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /app/data /app/logs \
    && chown app:app /app/data /app/logs

COPY --from=dependencies /opt/venv /opt/venv

# The code belongs to root: the app user reads and runs it, and cannot rewrite it.
# pyproject.toml: where s3-sync --version reads the version (sync_service/version.py).
COPY pyproject.toml ./
COPY sync_service ./sync_service

# The s3-sync command of pyproject.toml's [project.scripts], without building the package: the
# .pth puts /app on the path, so the command runs the code in /app/sync_service, which Compose's
# live reload replaces with the host's folder. The build fails when the command does not run.
RUN python -m compileall -q /app/sync_service \
    && echo /app > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/s3-sync-service.pth" \
    && printf '#!/opt/venv/bin/python\nimport sys\nfrom sync_service.main import main\nsys.exit(main())\n' \
        > /opt/venv/bin/s3-sync \
    && chmod 755 /opt/venv/bin/s3-sync \
    && s3-sync --version

USER 10001
EXPOSE 9090
# Liveness (the daemon's loop turns), not readiness: see sync_service/healthcheck.py.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "sync_service.healthcheck", "/livez"]
CMD ["s3-sync", "daemon"]
