# taskgate's container: `taskgate serve` on 0.0.0.0:8887 (gRPC) and 0.0.0.0:8888 (REST).
#   docker build -t taskgate .
#   docker run -p 8887:8887 -p 8888:8888 taskgate                       # embedded PostgreSQL
#   docker run -e TASKGATE_DATABASE_URL=postgresql://... taskgate        # an external one
# Linted by hadolint (tests/unit/test_deploy.py); Kubernetes manifests in deploy/
# (docs/deployment.md).

# Build: taskgate's wheel and wheels of its dependencies, at the versions CI tests
# (requirements/dev.lock as constraints).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY . .
RUN pip wheel --constraint requirements/dev.lock --wheel-dir /wheels .

# Run: the wheels installed into a clean slim image, no compiler, no sources, no network.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/taskgate-*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/taskgate taskgate
# Non-root (PostgreSQL refuses root anyway); the embedded PostgreSQL, used when no
# --database-url is given, keeps its data in /var/lib/taskgate/.taskgate.
USER 10001:10001
WORKDIR /var/lib/taskgate
EXPOSE 8887 8888
# Readiness over REST (slim has no curl): 200 from /healthz once serving and while the database
# answers. Assumes plaintext REST on 8888 (with --tls-cert, probe from outside instead).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/healthz', timeout=2)"]
ENTRYPOINT ["taskgate"]
CMD ["serve", "--grpc-address", "0.0.0.0:8887", "--http-address", "0.0.0.0:8888"]
