# The hub: one image for every role. The command picks the role:
#   hub serve --host 0.0.0.0 --port 8000   (default; does NOT migrate)
#   hub migrate                            (applies Alembic migrations, then exits)
#   hub worker                             (arq worker on Redis)
#
# Single stage on purpose: every dependency (asyncpg, uvloop, httptools,
# cryptography, ...) ships a manylinux wheel, so no compiler is needed.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Unprivileged runtime user with a fixed uid so volume ownership is predictable.
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin hub

COPY pyproject.toml README.md alembic.ini ./
COPY hub/ ./hub/
COPY connectors/ ./connectors/
COPY webhooks/ ./webhooks/
COPY templates/ ./templates/

# Install the package (and its `hub` console script) into the system site-packages,
# then drop the setuptools leftovers from the source tree.
# /app/var is the only writable place: the embedded SQLite mode keeps hub.db and
# secret.key there (mount a volume on it for `docker run` without Postgres).
RUN pip install --no-cache-dir . \
 && rm -rf build ./*.egg-info \
 && mkdir -p /app/var \
 && chown hub:hub /app/var

USER hub

EXPOSE 8000

# Liveness only (/healthz); readiness (/readyz, which checks dependencies) is left to
# the orchestrator. Assumes the default port 8000. Roles that serve no HTTP
# (migrate, worker) must disable this check, as docker-compose.yml does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8000"]
