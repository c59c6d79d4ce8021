# syntax=docker/dockerfile:1
# One image for every dmap role: Celery worker (the default command), coordinator (`dmap run ...`),
# and the Prometheus exporter (`python -m dmap.metrics`). Used by docker-compose.yml and deploy/k8s.
#
#   docker build -t dmap:local .
#   docker run --rm -e DMAP_REDIS_URL=redis://host:6379/0 dmap:local worker --import my_pkg.handlers
#   docker run --rm dmap:local run examples/demo/definition.json --backend celery --manifest s3://...
#
# Handlers reach workers by import: extend this image (FROM dmap, COPY your package into /app) or
# mount it, then pass `--import your.module` or DMAP_IMPORTS. /app is on PYTHONPATH and holds the
# examples (examples.demo.handlers is what the compose demo imports).
#
# No HEALTHCHECK here on purpose: the same image runs short-lived coordinators and exporters, for
# which a worker probe would be wrong. The worker's check (`celery inspect ping` of its own node)
# lives where the role is known: docker-compose.yml (healthcheck) and deploy/k8s (livenessProbe).

# The base image of both stages. BUILD_IMAGE, the build stage's, defaults to the same image; a
# machine without a reachable registry or index sets both (deploy/local-images.sh: a debootstrapped
# Debian with Python 3.11, and that base plus wheels built on the host, which pip finds through
# PIP_FIND_LINKS/PIP_NO_INDEX set in it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BUILD_IMAGE=${PYTHON_IMAGE}

# -- build: install dmap and its dependencies into a venv (all dependencies ship wheels) ----------
FROM ${BUILD_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/dmap
COPY pyproject.toml README.md ./
COPY dmap ./dmap
COPY workers ./workers
# Extras: parquet (pyarrow) for Parquet manifests and S3 Inventory, metrics (prometheus-client).
RUN /opt/dmap/bin/pip install --no-cache-dir ".[parquet,metrics]" \
    && /opt/dmap/bin/pip uninstall --yes pip setuptools wheel \
    && /opt/dmap/bin/python -m compileall -q /opt/dmap/lib

# -- runtime: the venv, the examples, a non-root user; no compilers, no pip cache, no sources -------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dmap" \
      org.opencontainers.image.description="AWS Step Functions Distributed Map semantics on Celery + Redis" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/dmap/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DMAP_BACKEND=celery
RUN groupadd --system --gid 10001 dmap \
    && useradd --system --uid 10001 --gid dmap --home-dir /app --shell /usr/sbin/nologin dmap
COPY --from=build /opt/dmap /opt/dmap
WORKDIR /app
COPY --chown=root:root examples ./examples
USER 10001:10001
# 9808: Prometheus metrics (dmap.metrics.DEFAULT_PORT), when a metrics server is started.
EXPOSE 9808
ENTRYPOINT ["dmap"]
CMD ["worker"]
