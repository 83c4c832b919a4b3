# One image for worker and producer. CPU-only torch keeps it near 1 GB instead of 6.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY wire wire
COPY producer producer
COPY worker worker
COPY ml ml
COPY models models
COPY samples samples
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.2,<3" "torchvision>=0.17" \
 && pip install ".[worker]"
RUN useradd --create-home tagger
USER tagger
CMD ["celery", "-A", "worker", "worker", "--loglevel", "INFO"]
