#!/usr/bin/env bash
# The browser test drives the Chromium of Debian's `chromium` package through Playwright (no
# browser download). Installs it where it is missing and apt is available to root; elsewhere it
# says what to do. LLMOPS_NO_BROWSER=1 skips the browser test instead.
set -euo pipefail
[[ "${LLMOPS_NO_BROWSER:-0}" == 1 ]] && exit 0
command -v chromium >/dev/null 2>&1 && exit 0
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }
  command -v chromium >/dev/null
else
  echo "setup: chromium not found: install your distribution's chromium package for the browser test," \
       "or set LLMOPS_NO_BROWSER=1 to skip it" >&2
fi
