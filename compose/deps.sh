#!/usr/bin/env bash
# Usage: compose/deps.sh
# Installs the Debian packages place needs to build, test and run locally.
# Only missing packages are installed (apt-get update runs only then), so it is
# fast when everything is present. Uses sudo when not root; works in CI as root.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config clang libclang-rt-14-dev
  libmicrohttpd-dev libwslay-dev libhiredis-dev libpq-dev librabbitmq-dev
  libssl-dev zlib1g-dev libpng-dev libjansson-dev libinih-dev libcmocka-dev
  redis-server redis-tools postgresql postgresql-client rabbitmq-server nginx-light
  curl python3 python3-websockets pngcheck apngdis procps iproute2 wrk
  chromium nodejs
)

# one dpkg-query for all (it exits 1 when some package is unknown)
installed=" $({ dpkg-query -W -f='${Package}=${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true; } |
  sed -n 's/=install ok installed$//p' | tr '\n' ' ') "
missing=()
for pkg in "${PACKAGES[@]}"; do
  [[ $installed == *" $pkg "* ]] || missing+=("$pkg")
done
# npm for the browser tests (tests/browser): Debian's, unless the machine has
# one already (a nodejs package from elsewhere bundles npm and conflicts with it)
command -v npm >/dev/null 2>&1 || missing+=(npm)
((${#missing[@]} > 0)) || exit 0

echo "deps: installing ${missing[*]}"
sudo=()
((EUID == 0)) || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive

# Don't let the server packages start system-wide daemons: place runs its own
# private instances (compose/services.sh).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
  trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi

"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
