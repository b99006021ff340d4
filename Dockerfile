# syntax=docker/dockerfile:1
# dli-monitor: a sidecar that watches DLI Spark batch jobs. Multi-stage: wheels are built in the
# first stage; the final image has no compiler, no pip cache, runs as a non-root user and works
# with a read-only root filesystem (state goes to a mounted volume, bytecode is not written).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="dli-monitor" \
      org.opencontainers.image.description="Watches Huawei Cloud DLI Spark batch jobs: JSON events and Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/dli-monitor/dli-monitor"
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "dli-monitor==${VERSION}" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin dli-monitor \
    && mkdir -p /var/lib/dli-monitor && chown 10001:10001 /var/lib/dli-monitor
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DLI_MONITOR_LOG_FORMAT=json \
    DLI_MONITOR_LISTEN=0.0.0.0:10071
VOLUME ["/var/lib/dli-monitor"]
USER 10001:10001
EXPOSE 10071
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:10071/healthz', timeout=2)"]
ENTRYPOINT ["dli-monitor"]
CMD ["run"]
