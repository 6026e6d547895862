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

# The allocator (HOTLINE_ASTERISK_ALLOCATOR, as the sandbox runs it: hotline/asterisk/sandbox_root.py):
# jemalloc gives freed memory back, where glibc's malloc lets a long-running Asterisk creep up;
# glibc's arenas are bounded either way (HOTLINE_ASTERISK_MALLOC_ARENA_MAX, 0 = glibc's default).
if [ "${HOTLINE_ASTERISK_ALLOCATOR:-jemalloc}" = jemalloc ]; then
    for lib in /usr/lib/*/libjemalloc.so.2; do
        if [ -e "$lib" ]; then
            export LD_PRELOAD="$lib"
        fi
    done
fi
arenas="${HOTLINE_ASTERISK_MALLOC_ARENA_MAX:-2}"
if [ "$arenas" != 0 ]; then
    export MALLOC_ARENA_MAX="$arenas"
fi

exec asterisk -f -C "$conf"
