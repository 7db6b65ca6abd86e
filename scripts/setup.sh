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
.venv/bin/python -m liverig.runtime.assets
.venv/bin/python -m liverig.runtime.page_assets  # three.js + three-vrm for the live page (--out page://...)
if [[ $dev == 1 ]]; then
  # Debian packages: liblo-tools (oscdump, the independent OSC decoder of the VMC tests); Mesa's
  # EGL software renderer (headless rendering for the real-detector data, models/training/render.py);
  # PortAudio (microphones through sounddevice, docs/voice.md); chromium (the live page's browser
  # test, driven by playwright); blender + python3-websockets (its BVH import test and the
  # live-link add-on, blender/).
  packages=(liblo-tools libegl1 libegl-mesa0 libgl1-mesa-dri libportaudio2 chromium blender python3-websockets)
  missing=()
  for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if (( ${#missing[@]} )); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      (apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }) \
        || echo "setup: could not install ${missing[*]}; the tests that need them will be skipped" >&2
    else
      echo "setup: install ${missing[*]} (Debian/Ubuntu) to run every test; those tests skip otherwise" >&2
    fi
  fi
fi
