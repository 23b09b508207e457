# syntax=docker/dockerfile:1
# Stream Classification server image.
#   CPU:  docker build -t stream-classify:cpu .
#   GPU:  docker build -t stream-classify:gpu --build-arg TF_PACKAGE='tensorflow[and-cuda]' .
#   Bake a model in: put model.keras and labels.txt in deploy/docker/models/ (the default MODEL_DIR)
#         or a folder below it, then
#         docker build --build-arg MODEL_DIR=deploy/docker/models/NAME ...   (copied to /models;
#         the folder must be under deploy/docker/, the only part of the repo .dockerignore lets in)
# Without a baked or mounted model the image serves the embedded broadcast monitor.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streaming ./streaming
COPY client ./client
COPY camera_tools ./camera_tools
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${PYTHON_IMAGE}
# tensorflow (CPU) or tensorflow[and-cuda] (NVIDIA GPU through TensorFlow's CUDA wheels).
ARG TF_PACKAGE=tensorflow
ARG MODEL_DIR=deploy/docker/models
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/tmp
COPY --from=wheel /dist/ /tmp/dist/
# The versions the test suite passed with (requirements.lock), as `make install` has them.
COPY requirements.lock /tmp/dist/
RUN python -m pip install --no-cache-dir -c /tmp/dist/requirements.lock "${TF_PACKAGE}" \
        "$(ls /tmp/dist/stream_classification-*.whl)[server]" \
    && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin classify
COPY --chown=root:root ${MODEL_DIR}/ /models/
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 1234: gRPC (streaming API, old API, health, reflection). 9100: Prometheus /metrics.
EXPOSE 1234 9100
ENTRYPOINT ["stream-classify"]
CMD ["serve", "-ip", "[::]:1234", "--metrics-address", "0.0.0.0:9100", "--log-format", "json"]
