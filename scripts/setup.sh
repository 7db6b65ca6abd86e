#!/usr/bin/env bash
# Set up liverig in ./.venv and fetch its model assets (pinned, checksummed, cached in .cache/).
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus training/test tools (torch CPU build, pytest, ruff) and test peers
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
extras=""
[[ $dev == 1 ]] && extras="[dev]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
.venv/bin/python -m runtime.assets
if [[ $dev == 1 ]]; then
  # Independent OSC decoder for the VMC conformance tests (Debian's liblo-tools: oscdump).
  if ! command -v oscdump >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      (apt-get install -y -qq liblo-tools >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq liblo-tools >/dev/null; }) \
        || echo "setup: could not install liblo-tools; the oscdump tests will be skipped" >&2
    else
      echo "setup: install liblo-tools (oscdump) to run the VMC conformance tests" >&2
    fi
  fi
fi
