# syntax=docker/dockerfile:1
# Asterisk from Debian's own packages (the same suite the sandbox uses), plus the hotline
# package so the entry script can render the configuration from settings and the roster.
# Build context: the repository root.
FROM debian:sid-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/hotline/venv/bin:$PATH

# espeak-ng: `hotline prompts build` synthesises the voice prompts at start-up.
# libjemalloc2: the allocator Asterisk runs with (the entry script preloads it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        asterisk \
        asterisk-core-sounds-en \
        asterisk-core-sounds-ru \
        espeak-ng \
        libjemalloc2 \
        python3 \
        python3-venv \
        tzdata \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Debian's Russian sounds come without the `ru` link English gets from its alternatives: without
# it a caller whose language is ru hears English (the sandbox root gets the same link).
RUN [ -e /usr/share/asterisk/sounds/ru ] \
    || ln -s ru_RU_f_IvrvoiceRU /usr/share/asterisk/sounds/ru

# The same fixed uid as the Python image: both write the shared state and recordings volumes.
# Asterisk runs as this user too; the rendered asterisk.conf keeps every writable folder
# under the state volume, so it needs no root.
RUN groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid hotline --home-dir /var/lib/hotline hotline \
    && install -d -o hotline -g hotline /var/lib/hotline/state /var/lib/hotline/state/run \
        /var/lib/hotline/recordings

WORKDIR /opt/hotline
COPY . .
# Editable for the same reason as in python.Dockerfile: templates live next to the code.
RUN python3 -m venv /opt/hotline/venv && /opt/hotline/venv/bin/pip install -e .
COPY docker/asterisk-entrypoint.sh /usr/local/bin/hotline-asterisk
RUN chmod 0755 /usr/local/bin/hotline-asterisk

USER hotline
ENTRYPOINT ["/usr/local/bin/hotline-asterisk"]
