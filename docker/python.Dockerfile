# syntax=docker/dockerfile:1
# One image for the Python services: `hotline agi`, `hotline router`, `hotline dashboard`
# (and the one-shot `hotline db upgrade`). Build context: the repository root.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tzdata: "today" on the dashboard is the local day of TZ. espeak-ng: incidents created on
# the dashboard are synthesised there (call_router/incidents.py). ffmpeg: pydub converts
# recorded utterances for the browser (dashboard/routes/audio.py) and audio for the menus.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata espeak-ng ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid shared with the Asterisk image, so both can write the shared volumes.
RUN groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid hotline --home-dir /var/lib/hotline hotline \
    && install -d -o hotline -g hotline /var/lib/hotline/state /var/lib/hotline/state/run \
        /var/lib/hotline/recordings

WORKDIR /opt/hotline
COPY . .
# Editable on purpose: settings find asterisk_conf/, ivr_flows/ and the prompts next to the
# code (PROJECT_ROOT), which a plain wheel install into site-packages would not carry.
RUN pip install -e .

USER hotline
ENTRYPOINT ["hotline"]
CMD ["dashboard"]
