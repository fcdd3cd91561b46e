# syntax=docker/dockerfile:1
# Diaspora Bot: one slim image for `serve`, `worker` and the migration job (compose.yaml).
#   docker build -t diaspora-bot .
#   docker run -p 8000:8000 -v diaspora-data:/data diaspora-bot

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY bot ./bot
COPY flows ./flows
RUN pip install .
COPY locales ./locales
# Compiled catalogs (.mo) are build products, never committed.
RUN python -c "import pathlib; from babel.messages import mofile, pofile; \
[mofile.write_mo(mo, pofile.read_po(po)) \
 for path in pathlib.Path('locales').rglob('*.po') \
 for po, mo in [(path.open('rb'), path.with_suffix('.mo').open('wb'))]]"

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite:////data/app.db
# ffmpeg converts the translators' voice prompts to OGG/Opus (api/domain/voice.py)
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 diaspora \
    && useradd --create-home --uid 10001 --gid diaspora --shell /usr/sbin/nologin diaspora \
    && mkdir /data \
    && chown diaspora:diaspora /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /src/locales /app/locales
WORKDIR /app
# The user `diaspora`, by number so that any runtime can resolve it.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["sh", "-c", "diaspora-bot db upgrade && exec diaspora-bot serve --host 0.0.0.0"]
