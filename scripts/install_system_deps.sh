#!/usr/bin/env bash
# Install the Debian packages the test suite uses, only those missing. Safe to run repeatedly.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)

[ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "note: cannot install ${need[*]} (not root); tests that need them will be skipped" >&2; exit 0; fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
