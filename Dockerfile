# syntax=docker/dockerfile:1
# dli-monitor: watches DLI Spark batch jobs. Multi-stage: the first stage installs the locked
# dependencies (exact versions, hash-checked) and the package into a venv; the final image
# copies that venv only: no compiler, no pip cache, no build tools. It runs as uid 10001 and
# works with a read-only root filesystem (state goes to a mounted volume, no bytecode written).
#
# The base image, pinned by digest so that a rebuild gets the same bytes: the last build of
# python:3.11.10-slim-bookworm (multi-arch index). Both stages must use the same image (the
# venv is copied between them). Any image with python3.11 and a working `python -m venv` on
# PATH will do: CI, which reaches no registry, passes a Debian bookworm root it built itself.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.10-slim-bookworm@sha256:840e180ebcc6e5c8efab209c43f5e40fd2af98cb49db5c7103c90539c56bb30e

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/dli-monitor
COPY requirements.lock /src/
RUN /opt/dli-monitor/bin/pip install --require-hashes --only-binary=:all: -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY monitor /src/monitor
# Dependencies are all in place: --no-deps keeps the lock the only source of versions.
RUN /opt/dli-monitor/bin/pip install --no-deps /src \
    && /opt/dli-monitor/bin/pip uninstall --yes pip \
    && find /opt/dli-monitor -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="dli-monitor" \
      org.opencontainers.image.description="Watches Huawei Cloud DLI Spark batch jobs: JSON events and Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/dli-monitor/dli-monitor"
COPY --from=build /opt/dli-monitor /opt/dli-monitor
# A numeric user needs no passwd entry; the state directory belongs to it.
RUN mkdir -p /var/lib/dli-monitor && chown 10001:10001 /var/lib/dli-monitor
ENV PATH=/opt/dli-monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DLI_MONITOR_LOG_FORMAT=json \
    DLI_MONITOR_LISTEN=0.0.0.0:10071
VOLUME ["/var/lib/dli-monitor"]
USER 10001:10001
EXPOSE 10071
# Asks /healthz wherever DLI_MONITOR_LISTEN put the server (a wildcard host: loopback).
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import os, urllib.request as u; h, _, p = os.environ.get('DLI_MONITOR_LISTEN', ':10071').rpartition(':'); h = h.strip('[]'); h = '127.0.0.1' if h in ('', '0.0.0.0', '::') else h; h = f'[{h}]' if ':' in h else h; u.urlopen(f'http://{h}:{p}/healthz', timeout=2)"]
ENTRYPOINT ["dli-monitor"]
CMD ["run"]
