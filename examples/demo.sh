#!/usr/bin/env bash
# The main job on the bundled example (filled in as the engine lands).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/paysplit --help
