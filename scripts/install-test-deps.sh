#!/usr/bin/env bash
# Installs the Debian packages the tests start for real (SPEC sections 10, 17, 18 and 20): the CNCF distribution
# registry (docker-registry), htpasswd (apache2-utils), openssl, chromium (the status page's browser
# tests drive it through playwright-core with executablePath=/usr/bin/chromium; no browser download), and
# the clients of the pull path: skopeo, containerd (its daemon and ctr) and python3 (tomllib reads the
# rendered TOML back).
# Usage: install-test-deps.sh            what `npm test` needs
#        install-test-deps.sh postgres   also PostgreSQL 15 (`npm run test:postgres`: FerretDB's postgresql
#                                        handler; the tests run their own server in a throw-away directory,
#                                        never the system's cluster)
# Idempotent: a fast no-op when all are present.
set -euo pipefail

# tool → Debian package
declare -A PACKAGE=([docker-registry]=docker-registry [htpasswd]=apache2-utils [openssl]=openssl [chromium]=chromium [skopeo]=skopeo [containerd]=containerd [ctr]=containerd [python3]=python3)
needed=()
for tool in docker-registry htpasswd openssl chromium skopeo containerd ctr python3; do
  command -v "$tool" >/dev/null 2>&1 || needed+=("${PACKAGE[$tool]}")
done
if [ "${1:-}" = postgres ]; then
  # Not on PATH: Debian keeps a version's server programs in its own directory (test/support/postgres.ts).
  [ -x /usr/lib/postgresql/15/bin/initdb ] || needed+=(postgresql-15)
fi
[ "${#needed[@]}" = 0 ] && exit 0
mapfile -t needed < <(printf '%s\n' "${needed[@]}" | sort -u)

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-test-deps: missing ${needed[*]} and this user cannot install packages" >&2
    exit 1
  fi
else
  SUDO=""
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${needed[@]}"
