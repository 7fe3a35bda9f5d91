#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are installed (Debian's
# `chromium` and `chromium-driver`), for the console's browser test
# (functions/api/tests/console_browser.rs); installs them with apt when absent.
#   scripts/browser.sh        prints the chromedriver path
set -euo pipefail

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "browser: installing chromium and chromium-driver (apt)" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
fi
command -v chromedriver
