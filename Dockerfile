# One image for every KKMP service; SERVICE (registry, inventory, sourcing, reporting, notifications,
# portal) and PORT choose which one a container runs. Migrations run when the service starts.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY shared shared
COPY cli cli
COPY services services
COPY testkit testkit
# The services and their dependencies, not the dev group (tests, the test kit): it is removed here.
RUN uv sync --frozen --no-dev && rm -rf testkit

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 kkmp
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" KKMP_DATA_DIR=/var/lib/kkmp SERVICE=registry PORT=8001 PYTHONUNBUFFERED=1
# glibc: two malloc arenas and a fixed mmap threshold, so freed memory goes back (kkmp_shared/memory.py).
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
RUN mkdir -p /var/lib/kkmp && chown kkmp /var/lib/kkmp
USER kkmp
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=6 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health/ready', timeout=2)"
CMD ["sh", "-c", "exec uvicorn ${SERVICE}.bootstrap:create_app --factory --host 0.0.0.0 --port ${PORT} --no-access-log"]
