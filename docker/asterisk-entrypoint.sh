#!/bin/sh
# Start-up of the asterisk container: prompts and configuration are rendered from the same
# HOTLINE_* settings and database as the Python services, then Asterisk runs in the
# foreground (-f, never -c: without a tty the console spins).
set -eu

hotline prompts build

# `hotline asterisk render` prints "rendered <etc dir>"; fall back to the known layout.
rendered=$(hotline asterisk render)
echo "$rendered"
etc_dir=$(printf '%s\n' "$rendered" | sed -n 's/^rendered //p' | tail -n 1)
conf="${etc_dir:-${HOTLINE_STATE_DIR:?HOTLINE_STATE_DIR must be set}/asterisk/etc}/asterisk.conf"
if [ ! -f "$conf" ]; then
    echo "hotline-asterisk: no rendered config at $conf" >&2
    exit 1
fi

exec asterisk -f -C "$conf"
