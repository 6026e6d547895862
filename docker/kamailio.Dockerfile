# syntax=docker/dockerfile:1
# The cluster's SIP edge (compose profile `cluster`): Kamailio from Debian's packages (the
# dispatcher, tm, rr and path modules are in the main package), plus the hotline package so
# the entry script renders its config from the same settings and secrets as `hotline cluster`
# (asterisk_conf/kamailio/, hotline/cluster/kamailio.py). Build context: the repository root.
FROM debian:sid-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/hotline/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        kamailio \
        python3 \
        python3-venv \
        tzdata \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# The same fixed uid as the other images: it reads the shared state volume (the edge secret).
RUN groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid hotline --home-dir /var/lib/hotline hotline \
    && install -d -o hotline -g hotline /var/lib/hotline/state /var/lib/hotline/state/run \
        /var/lib/hotline/recordings

WORKDIR /opt/hotline
COPY . .
RUN python3 -m venv /opt/hotline/venv && /opt/hotline/venv/bin/pip install -e .
COPY docker/kamailio-entrypoint.sh /usr/local/bin/hotline-kamailio
RUN chmod 0755 /usr/local/bin/hotline-kamailio

USER hotline
ENTRYPOINT ["/usr/local/bin/hotline-kamailio"]
