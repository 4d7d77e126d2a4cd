#!/usr/bin/env bash
# Create .venv and install the project. Idempotent: a second run only checks.
#   bash scripts/setup.sh          # the pipeline's dependencies, with the reference libraries
#                                  # (oracles) that tokenizer_compare checks parity against
#   bash scripts/setup.sh --dev    # plus test tools, and Debian's chromium for the browser tests
#                                  # (apt-get, as root; playwright drives /usr/bin/chromium, no
#                                  # `playwright install` browser download)
# torch is installed first, pinned to the CPU wheel (torch==2.13.0): the project's own range is
# then satisfied and pip never reaches for a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="[oracles]"  # tokenizer_compare measures parity with tiktoken, tokenizers, sentencepiece
[[ "${1:-}" == "--dev" ]] && extras="[dev]"
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  .venv/bin/pip install --quiet "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c 'import torch' || { echo "setup: torch failed to install" >&2; exit 1; }
fi
if ! .venv/bin/pip install --quiet -e ".${extras}" > .venv/pip.log 2>&1; then
  cat .venv/pip.log >&2
  exit 1
fi
if [[ "${1:-}" == "--dev" && ! -x /usr/bin/chromium ]]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [[ "$(id -u)" != "0" ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
      > .venv/apt.log 2>&1 || { cat .venv/apt.log >&2; echo "setup: installing chromium failed" >&2; exit 1; }
  else
    echo "setup: /usr/bin/chromium is missing and apt-get is not available; the browser tests need it" >&2
  fi
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
