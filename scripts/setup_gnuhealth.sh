#!/usr/bin/env bash
# Sets up GNU Health 5.0, the optional second web EHR the clinical run-through is tested
# against (tests/test_gnuhealth.py): PostgreSQL from Debian, GNU Health + its lab module in a
# venv of their own (.venv-gnuhealth, pinned by tests/gnuhealth/requirements.lock), and SAO
# (the Tryton web client) with the libraries its page loads, from npm, in
# .venv-gnuhealth/sao (never the project's node_modules). Then the initialised database is
# built once and dumped (tests restore it per session in ~2.5 s).
#
# Safe to run again: a stamp skips what is done. It never stops the project's own set-up: on
# failure it writes ONE line naming what is missing to .venv-gnuhealth/setup-error (the
# GNU Health tests fail with that line) and exits 3.
set -uo pipefail
cd "$(dirname "$0")/.."

V=.venv-gnuhealth
ERR=$V/setup-error
DEBS=(postgresql libpq-dev gcc)
say() { printf 'setup (gnuhealth): %s\n' "$*" >&2; }
fail() {
  mkdir -p "$V"
  printf 'GNU Health set-up failed: %s\n' "$*" >"$ERR"
  say "FAILED: $* (the rest of the suite still runs; tests/test_gnuhealth.py fails with this line)"
  exit 3
}

rm -f "$ERR"  # found again below if it still stands
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1 \
      || fail "apt-get could not install ${missing[*]}"
  else
    fail "missing Debian packages ${missing[*]} (sudo apt-get install --no-install-recommends ${missing[*]})"
  fi
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || fail "no PostgreSQL server programs (initdb) under /usr/lib/postgresql"
command -v npm >/dev/null || fail "npm is not on PATH (needed for SAO, the GNU Health web client)"

want=$(cat tests/gnuhealth/requirements.lock tests/gnuhealth/sao/package.json \
  tests/gnuhealth/sao/package-lock.json | sha256sum | cut -d' ' -f1)
stamp=$V/.setup-stamp
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  PY=${PYTHON:-python3}
  [[ -x $V/bin/python ]] || { say "creating $V"; "$PY" -m venv "$V" || fail "$PY -m venv $V failed (python3-venv?)"; }
  say "installing gnuhealth 5.0.6 and gnuhealth-lab 5.0.4 into $V (pinned; psycopg2 is compiled: ~1 min)"
  log=$V/pip.log
  "$V/bin/python" -m pip install -q --disable-pip-version-check -r tests/gnuhealth/requirements.lock >"$log" 2>&1 \
    || fail "pip could not install GNU Health into $V: $(grep -m1 -iE 'error' "$log" || tail -1 "$log")"

  say "installing SAO (tryton-sao 7.0.56) and its libraries from npm into $V/sao"
  npmdir=$V/sao-npm
  mkdir -p "$npmdir"
  cp tests/gnuhealth/sao/package.json tests/gnuhealth/sao/package-lock.json "$npmdir/"
  (cd "$npmdir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >npm.log 2>&1) \
    || fail "npm could not install tryton-sao into $npmdir (see $npmdir/npm.log)"
  # SAO's index.html loads bower_components/<name>/…: the same packages from npm, by name
  m=$npmdir/node_modules
  rm -rf "$V/sao" && cp -r "$m/tryton-sao" "$V/sao" && mkdir -p "$V/sao/bower_components/d3" || fail "cannot write $V/sao"
  for pkg in jquery bootstrap moment gettext.js c3 papaparse fullcalendar mousetrap; do
    cp -r "$m/$pkg" "$V/sao/bower_components/$pkg" || fail "npm package $pkg missing in $m"
  done
  cp -r "$m/sortablejs" "$V/sao/bower_components/Sortable" || fail "npm package sortablejs missing in $m"
  cp "$m/d3/dist/d3.min.js" "$V/sao/bower_components/d3/d3.min.js" || fail "d3 5 has no dist/d3.min.js in $m"
  rm -f "$V"/gnuhealth-*.dump  # built again below for the new versions
  echo "$want" >"$stamp"
fi

# The initialised database (trytond-admin --all -u health health_lab, ~1 min once), dumped.
".venv/bin/python" -m tests.gnuhealth.server prepare 2>"$V/prepare.log" \
  || fail "$(tail -1 "$V/prepare.log")"
