#!/usr/bin/env bash
# .ci/system-packages.sh - the Debian packages the test suite uses, installed when missing:
#   chromium    the browser tests (tests/test_browser*.py) drive it through Playwright, by path;
#               Playwright's own browser download is never used (it needs the internet);
#   fonts-liberation, fonts-dejavu-core   so that its pages (and screenshots) have text;
#   bubblewrap  the grader's sandbox.
# Needs root to install; without root, or where apt-get cannot install them, it says so in one
# line and exits 0: the browser tests then skip with one line saying why.
set -euo pipefail

PACKAGES=(chromium fonts-liberation fonts-dejavu-core bubblewrap)
say() { echo "system-packages.sh: $*"; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    say "already installed: ${PACKAGES[*]}"
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    say "cannot install ${missing[*]} (needs root and apt-get); the tests that need them will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    say "installed ${missing[*]}"
else
    say "apt-get could not install ${missing[*]}; the tests that need them will skip"
fi
