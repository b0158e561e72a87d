# The Maraudes web image: Django + Channels served by uvicorn, GeoDjango on GDAL/GEOS/PROJ.
# docker-compose.yml runs it twice: once as the `migrate` job, then as the `web` workers.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

# GeoDjango loads libgdal, libgeos_c and libproj through ctypes: gdal-bin pulls in all three.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gdal-bin \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
# The project itself is not installed as a wheel: its wheel carries no templates, static
# files or locale, and settings.BASE_DIR must be this source tree. It runs from /app.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Static files are collected at build time, so the image serves them (WhiteNoise) on its own;
# the compose `migrate` job collects them again into the shared volume after an upgrade.
# collectstatic does not touch the database: the build needs no server.
RUN python manage.py collectstatic --noinput -v 0

RUN useradd --system --create-home --uid 10001 --user-group maraudes \
    && chown -R maraudes:maraudes /app/staticfiles
USER maraudes

EXPOSE 8000

# --lifespan off: Django's ASGI handler does not implement the lifespan protocol.
CMD ["uvicorn", "maraudes.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--workers", "3", "--lifespan", "off"]
