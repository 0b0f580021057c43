# One image for every stage of the pipeline; the command chooses the stage (docs/deploy.md):
#   python -m ingest              ingest edge (webhooks, OAuth connect, pulls) on INGEST_PORT (8000)
#   python -m projections api     query API on PROJECTIONS_API_PORT (8002)
#   python -m processors          fetcher and normalizer (PROCESSORS_RUN_FETCHER / _NORMALIZER pick one)
#   python -m projections         projection workers
#   python -m simulator           WHOOP simulator (development only)
#   whoop-pipeline topics|migrate, wear ...   the operator commands
# Build: docker build -t whoop-pipeline .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the locked dependencies into /app/.venv, then the project itself
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# dependencies first: this layer is rebuilt only when the lock changes
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-install-project --python /usr/local/bin/python3.11 -q
COPY schemas ./schemas
COPY infra ./infra
COPY ingest ./ingest
COPY processors ./processors
COPY projections ./projections
COPY simulator ./simulator
COPY deploy ./deploy
COPY wear ./wear
COPY README.md ./
RUN uv sync --locked --no-editable --python /usr/local/bin/python3.11 -q

# --- runtime: the interpreter, the virtual environment and nothing else
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --no-create-home --home-dir /app pipeline
WORKDIR /app
COPY --from=build --chown=root:root /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIPELINE_ENV=production
USER 10001:10001
EXPOSE 8000 8002 8100 9101 9102
CMD ["python", "-m", "ingest"]
