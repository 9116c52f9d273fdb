#!/bin/sh
# Install the Debian packages imagegate needs to build, run and test.
# Idempotent: does nothing when every package is already installed.
set -eu
PKGS="build-essential cmake pkg-config libevent-dev libcjson-dev libcurl4-openssl-dev
libsqlite3-dev libvips-dev libssl-dev libcmocka-dev curl sqlite3"
# (sqlite3, the shell: the end-to-end tests read the ledger and task rows with it)
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS nginx-light libnginx-mod-http-echo wrk"
fi
missing=""
# Node.js runs the end-to-end tests; any install that provides `node` will do.
command -v node >/dev/null 2>&1 || missing=" nodejs npm"
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install-deps: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
