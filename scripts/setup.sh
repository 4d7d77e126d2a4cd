#!/usr/bin/env bash
# Create .venv and install the project. Idempotent: a second run only checks.
#   bash scripts/setup.sh          # the pipeline, the reference libraries (oracles) and test tools
#   bash scripts/setup.sh --dev    # plus Debian's chromium for the browser tests (apt-get, as root;
#                                  # playwright drives /usr/bin/chromium, no browser download)
# Versions come from requirements.lock (every package pinned, written by scripts/lock.sh), so a
# fresh machine gets the environment the tests passed on. torch is installed first, pinned to the
# CPU wheel (torch==2.13.0), so pip never reaches for a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
  "$PY" -m venv .venv
fi
pip_install() {  # quiet, with the log shown only when it fails
  .venv/bin/python -m pip install --quiet "$@" > .venv/pip.log 2>&1 || { cat .venv/pip.log >&2; exit 1; }
}
if ! .venv/bin/python -m pip show --quiet torch >/dev/null 2>&1; then
  pip_install "torch==2.13.0"
fi
pip_install -r requirements.lock
pip_install --no-deps -e .
if [[ "${1:-}" == "--dev" && ! -x /usr/bin/chromium ]]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [[ "$(id -u)" != "0" ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    # wait for the dpkg lock (up to 10 minutes) when another install holds it
    apt=(apt-get -o DPkg::Lock::Timeout=600)
    { $SUDO "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive $SUDO "${apt[@]}" install -y -qq chromium; } \
      > .venv/apt.log 2>&1 || { cat .venv/apt.log >&2; echo "setup: installing chromium failed" >&2; exit 1; }
  else
    echo "setup: /usr/bin/chromium is missing and apt-get is not available; the browser tests need it" >&2
  fi
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
