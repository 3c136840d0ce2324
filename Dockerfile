# The Python services (simulator, monitors, incident detector, dashboard) in one image; docker-compose.yml
# picks the service through `command`. Runs as an unprivileged user; state goes to the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so editing the code does not reinstall Prophet.
COPY pyproject.toml README.md ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

COPY . .
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin streamwatch \
 && mkdir -p /data \
 && chown streamwatch:streamwatch /data

USER streamwatch
VOLUME ["/data"]
EXPOSE 5000 8000 8090 8099 8110
CMD ["python", "simulator.py", "serve", "--host", "0.0.0.0"]
