#!/bin/sh
# Check the shipped systemd units and logrotate file: systemd-analyze verify
# on the units (with ExecStart pointed at the built server, since verify
# wants the binary to exist; csgi@.service as its instance csgi@a), the
# instances' JSON configurations (--check-config), and the logrotate file parsed by logrotate
# --debug (with its paths moved into a temporary directory). A tool that is
# not installed skips its check, saying so.
# Usage: install_test.sh SOURCE_DIR SERVER
set -eu
src=$1
server=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checked=0

# The unit's invariants, whatever tool is installed.
svc="$src/contrib/systemd/csgi.service"
sock="$src/contrib/systemd/csgi.socket"
for want in 'KillMode=mixed' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' \
    'ExecStartPre=/usr/local/bin/csgi-server $CSGI_ARGS --check-config' \
    'ExecStart=/usr/local/bin/csgi-server $CSGI_ARGS'; do
    grep -qxF "$want" "$svc" || { echo "csgi.service lacks: $want"; exit 1; }
done
# A unix ListenStream must not live in the RuntimeDirectory (removed at every stop).
rtdir=$(sed -n 's/^RuntimeDirectory=//p' "$svc")
if grep -E "^#? *ListenStream=/run/$rtdir/" "$sock" >/dev/null; then
    echo "csgi.socket listens in /run/$rtdir, the service's RuntimeDirectory"
    exit 1
fi

# The instances of csgi@.service: their JSON configurations pass --check-config.
mkdir -p "$tmp/plugins"
for inst in a b; do
    "$server" --config "$src/contrib/systemd/$inst.json" --plugins "$tmp/plugins" --check-config \
        --error-log "$tmp/check.log" >/dev/null ||
        { echo "contrib/systemd/$inst.json fails --check-config:"; cat "$tmp/check.log"; exit 1; }
done
grep -qxF 'ExecStart=/usr/local/bin/csgi-server $CSGI_ARGS' "$src/contrib/systemd/csgi@.service" ||
    { echo "csgi@.service lacks its ExecStart"; exit 1; }

if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$tmp/units"
    sed "s|/usr/local/bin/csgi-server|$server|g" "$svc" >"$tmp/units/csgi.service"
    sed "s|/usr/local/bin/csgi-server|$server|g" "$src/contrib/systemd/csgi@.service" \
        >"$tmp/units/csgi@.service"
    cp "$sock" "$tmp/units/csgi.socket"
    # verify prints its findings on stderr and exits non-zero on errors.
    if ! out=$(cd "$tmp/units" &&
        systemd-analyze verify --man=no ./csgi.socket ./csgi.service ./csgi@a.service 2>&1); then
        echo "systemd-analyze verify failed:"
        echo "$out"
        exit 1
    fi
    if [ -n "$out" ]; then
        echo "systemd-analyze verify warns:"
        echo "$out"
        exit 1
    fi
    checked=$((checked + 1))
else
    echo "skipped: systemd-analyze is not installed (apt-get install systemd)"
fi

if command -v logrotate >/dev/null 2>&1; then
    mkdir -p "$tmp/log"
    : >"$tmp/log/error.log"
    sed -e "s|/var/log/csgi|$tmp/log|g" -e "s|create 0640 www-data www-data|create 0640|" \
        "$src/contrib/logrotate/csgi" >"$tmp/logrotate.conf"
    logrotate --debug --state "$tmp/state" "$tmp/logrotate.conf" >"$tmp/lr.out" 2>&1 ||
        { echo "logrotate rejects contrib/logrotate/csgi:"; cat "$tmp/lr.out"; exit 1; }
    if grep -qi "error" "$tmp/lr.out"; then
        echo "logrotate reports errors:"; cat "$tmp/lr.out"; exit 1
    fi
    checked=$((checked + 1))
else
    echo "skipped: logrotate is not installed (apt-get install logrotate)"
fi
echo "contrib checks passed ($checked tool check(s) run)"
