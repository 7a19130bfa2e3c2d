#!/bin/sh
# Install Debian's chromium for the page tests, which drive it through Playwright with
# executable_path=/usr/bin/chromium (no Playwright-managed browser download is needed).
# Recommended packages are skipped (printer tools, notification daemon, udev...): a headless browser needs
# none of them, only a font, which is named explicitly.
# MIRANTE_CHROMIUM names a Chromium already on the machine instead (no root needed); the page tests use it.
# A name that is not an executable file fails here, so `make test` never runs with its page tests skipped.
set -eu

if [ -n "${MIRANTE_CHROMIUM:-}" ]; then
    if [ -f "$MIRANTE_CHROMIUM" ] && [ -x "$MIRANTE_CHROMIUM" ]; then
        echo "chromium from MIRANTE_CHROMIUM: $("$MIRANTE_CHROMIUM" --version 2>/dev/null || echo "$MIRANTE_CHROMIUM")"
        exit 0
    fi
    echo "error: MIRANTE_CHROMIUM=$MIRANTE_CHROMIUM is not an executable file." >&2
    exit 1
fi

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $CHROMIUM is missing and apt-get is not available;" >&2
    echo "       install Chromium with your system's package manager so that $CHROMIUM exists," >&2
    echo "       or name a Chromium you have: MIRANTE_CHROMIUM=/path/to/chromium make test" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    AS_ROOT=""
elif command -v sudo >/dev/null 2>&1; then
    AS_ROOT="sudo"
else
    echo "error: installing chromium needs root; run as root or install sudo," >&2
    echo "       or run: apt-get update && apt-get install -y chromium" >&2
    echo "       or name a Chromium you have: MIRANTE_CHROMIUM=/path/to/chromium make test" >&2
    exit 1
fi

echo "installing chromium with apt-get (takes a few minutes on a new machine)..."
if ! $AS_ROOT env DEBIAN_FRONTEND=noninteractive apt-get update \
    || ! $AS_ROOT env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-liberation; then
    echo "error: apt-get could not install chromium (see the output above)." >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
    echo "error: the chromium package installed but $CHROMIUM does not exist." >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
