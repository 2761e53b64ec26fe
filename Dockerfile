# One image for the API and the worker; the command picks which.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY elevate ./elevate
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY worker.py ./
RUN pip install --no-cache-dir . && useradd --system elevate
USER elevate
EXPOSE 8000
CMD ["elevate", "api", "--host", "0.0.0.0", "--port", "8000"]
