#!/usr/bin/env bash
# nyd's demo: set up this host, build the built-in demo image, convert it to
# nyd, inspect and verify the result, then start a container from it lazily
# under containerd (scripts/demo-lazy.sh). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
demo=.nyd-demo
bash scripts/make-demo-image.sh "$demo/src"
rm -rf "$demo/nyd"
echo "== nyd convert oci:$demo/src:latest oci:$demo/nyd:latest"
bin/nyd convert "oci:$demo/src:latest" "oci:$demo/nyd:latest"
echo "== nyd inspect oci:$demo/nyd:latest"
bin/nyd inspect "oci:$demo/nyd:latest"
echo "== nyd check oci:$demo/nyd:latest"
bin/nyd check "oci:$demo/nyd:latest"
echo "== lazy start: push to a local registry, lazy pull into a local containerd, run"
bash scripts/demo-lazy.sh "$demo/nyd" latest
