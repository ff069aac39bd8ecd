#!/usr/bin/env bash
# Installs what nyd needs on Debian 12 (run as root), then installs npm
# dependencies and builds. Idempotent; used by the README, .ci/run and demo.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ca-certificates git python3 make g++ pkg-config    # native addons (node-gyp)
  libfuse2 libfuse-dev fuse3                          # fuse-native needs libfuse2 at run time
  zstd gzip tar xz-utils openssl attr apache2-utils   # fixtures, test CA, htpasswd, getfattr
  umoci skopeo                                        # independent OCI tools for round-trip tests
  docker-registry                                     # a real registry for tests and the demo
  containerd runc stargz-snapshotter                  # containerd, runc and ctr-remote
  busybox-static                                      # the demo image's userland
  debootstrap curl iproute2                           # bench: Debian images, network profiles (tc)
  erofs-utils                                         # fsck.erofs/dump.erofs: reference readers for tests only, never a run-time dependency
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these services on install; nyd's tests start their own instances.
for svc in docker-registry containerd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

npm ci --no-audit --no-fund
# npm 11 may skip install scripts of dependencies; build the native ones explicitly and check they load.
npm rebuild --no-audit fuse-native zstd-napi better-sqlite3 msgpackr-extract >/dev/null
npm run build
node -e "require('zstd-napi'); require('fuse-native'); new (require('better-sqlite3'))(':memory:'); require('./dist/native/posix.js')" \
  || { echo "setup: a native dependency failed to load" >&2; exit 1; }
