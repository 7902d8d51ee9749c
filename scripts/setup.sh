#!/usr/bin/env bash
# Sets up everything golive-rehearsal needs on a Debian machine; safe to run again (fast
# when nothing changed). Debian packages (as root), a venv in .venv with pinned Python
# packages, and the Allure 3 report tool from npm (project-local, node_modules/).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(chromium chromium-headless-shell cups-client cups-daemon cups-ipp-utils dbus fonts-dejavu-core nodejs npm slapd)
say() { printf 'setup: %s\n' "$*" >&2; }

missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
# node and npm may come from elsewhere than Debian (nodesource, nvm): accept what is on PATH
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  read -r -a missing <<<"${missing[*]}"
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # slapd: only its programs are used (a private instance per reference hospital, on loopback);
    # no system directory service, database or admin password is created.
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
    exit 2
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  say "installing Python packages into .venv (pinned by requirements.lock)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
  echo "$want" >"$stamp"
fi

nstamp=node_modules/.setup-stamp
nwant=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [[ ! -f $nstamp || $(cat "$nstamp") != "$nwant" ]]; then
  say "installing the Allure 3 report tool (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$nwant" >"$nstamp"
fi

# GNU Health, the optional second web EHR (tests/test_gnuhealth.py): never stops this set-up; a
# failure is one line in .venv-gnuhealth/setup-error, and the GNU Health tests fail with it.
./scripts/setup_gnuhealth.sh || say "GNU Health (optional) not set up: $(cat .venv-gnuhealth/setup-error 2>/dev/null)"
