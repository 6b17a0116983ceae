#!/usr/bin/env bash
# Installs what sluice needs on Debian 12, and nothing that is already there.
#   scripts/deps.sh build   compiler, CMake and the libraries sluice links
#   scripts/deps.sh test    the above, plus cmocka, clang's sanitizer runtime, nginx and wrk
#                           (bench), Node.js and the e2e npm packages (from the lockfile)
set -euo pipefail
mode=${1:-build}
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libevent-dev libcurl4-openssl-dev libcjson-dev
      libfyaml-dev libssl-dev libmimalloc-dev libsqlite3-dev libpq-dev ca-certificates)
if [ "$mode" = test ]; then
  pkgs+=(libcmocka-dev nodejs npm nginx-light wrk curl openssl postgresql iproute2 clang
        libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node may come from elsewhere than Debian (e.g. nodesource); accept any node >= 18 with npm.
if [ "$mode" = test ] && command -v node >/dev/null && command -v npm >/dev/null; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge 18 ]; then
    tmp=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || tmp+=("$p"); done
    missing=("${tmp[@]+"${tmp[@]}"}")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ]; then
  # nginx-light's package enables a default site on port 80; the bench never uses it.
  lock=tests/e2e/package-lock.json
  stamp=tests/e2e/node_modules/.sluice-lock
  if [ ! -f "$stamp" ] || ! cmp -s "$lock" "$stamp"; then
    echo "deps: npm ci (tests/e2e)"
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
    cp "$lock" "$stamp"
  fi
fi
