# The motwatch worker. Build and run it with the stack in docker-compose.yml:
#   docker compose up --build
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Install from a scratch copy of the sources (pyproject maps streams/, agents/ and
# tracker/ into the motwatch package), then drop it: only the installed package remains.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY motwatch/ motwatch/
COPY streams/ streams/
COPY agents/ agents/
COPY tracker/ tracker/
RUN pip install . && rm -rf /src

# The worker's working directory: ./config/motwatch.toml is read from here, and
# Faust keeps its data directory here, so it must be writable by the worker.
WORKDIR /app
COPY config/ config/
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin motwatch \
    && chown motwatch:motwatch /app
USER motwatch

# Prometheus metrics at /metrics (setting web_port). Bind to all interfaces
# inside the container, or nothing outside it can reach the port.
ENV MOTWATCH_WEB_BIND=0.0.0.0
EXPOSE 6066

CMD ["motwatch", "worker"]
