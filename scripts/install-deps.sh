#!/usr/bin/env bash
# Install what the engine and its tests need on Debian 12, only what is missing.
#   system: debootstrap (builds the Asterisk root), sip-tester (SIPp),
#           redis-server, prometheus (+ promtool), espeak-ng + sox (prompts),
#           postgresql (the tests start their own cluster), python3-venv
#   python: a virtualenv in .venv with the project and its test extras
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v sipp >/dev/null || need+=(sip-tester)
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null || need+=(prometheus)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
command -v chromium >/dev/null || need+=(chromium)   # headless test of the wallboard page
command -v chromedriver >/dev/null || need+=(chromium-driver)   # drives it in the desktop's browser tests (selenium)
command -v chroot >/dev/null || need+=(coreutils)
command -v mount >/dev/null || need+=(mount)
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need+=(postgresql)   # the case database's tests
command -v runuser >/dev/null || need+=(util-linux)
command -v ss >/dev/null || need+=(iproute2)       # the listeners test (tests/e2e/test_hardening.py)
command -v pgrep >/dev/null || need+=(procps)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)

if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing packages: ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
        exit 1
    fi
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Debian starts redis-server and prometheus as services when it can; the
# engine and the tests run their own, on their own ports.
for svc in redis-server prometheus postgresql; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        echo "note: the system $svc service is running; the engine uses its own instance"
    fi
done

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11 or newer is needed, found {sys.version.split()[0]}")
PY
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
