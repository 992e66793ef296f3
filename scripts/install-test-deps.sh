#!/usr/bin/env bash
# Installs the Debian packages the registry tests start for real (SPEC section 10): the CNCF distribution
# registry (docker-registry), htpasswd (apache2-utils) and openssl. Idempotent: a fast no-op when all are present.
set -euo pipefail

missing=0
for tool in docker-registry htpasswd openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
[ "$missing" = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-test-deps: docker-registry, htpasswd or openssl is missing and this user cannot install packages" >&2
    exit 1
  fi
else
  SUDO=""
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends docker-registry apache2-utils openssl
