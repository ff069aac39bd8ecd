#!/usr/bin/env bash
# Builds nyd's built-in demo image as an OCI layout, from files already on
# this Debian host (no network): a busybox userland, Debian's python3.11
# with the shared libraries it needs, and its standard library (~55 MB).
# Usage: make-demo-image.sh DIR   -> writes oci:DIR:latest
set -euo pipefail
out=${1:?usage: make-demo-image.sh DIR}
[ -e "$out/index.json" ] && { echo "demo image exists: $out"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:latest" >/dev/null

# Layer 1: busybox and the python interpreter with its libraries.
umoci unpack --image "$work/layout:latest" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
mkdir -p "$root"/{bin,usr/bin,lib,lib64,tmp,etc,proc,sys,dev}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for cmd in sh ls cat echo env wc head sleep; do ln -sf busybox "$root/bin/$cmd"; done
cp /usr/bin/python3.11 "$root/usr/bin/python3.11"
ln -sf python3.11 "$root/usr/bin/python3"
for lib in $(ldd /usr/bin/python3.11 | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
umoci repack --image "$work/layout:latest" "$work/bundle" >/dev/null
rm -rf "$work/bundle"

# Layer 2: the python standard library.
umoci unpack --image "$work/layout:latest" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/usr/lib"
cp -a /usr/lib/python3.11 "$work/bundle/rootfs/usr/lib/python3.11"
find "$work/bundle/rootfs/usr/lib/python3.11" -name '__pycache__' -prune -exec rm -rf {} +
umoci repack --image "$work/layout:latest" "$work/bundle" >/dev/null

umoci config --image "$work/layout:latest" \
  --config.cmd /usr/bin/python3 --config.cmd -c \
  --config.cmd "import json, platform; print(json.dumps({'hello': 'from a lazily started nyd image', 'python': platform.python_version()}))" \
  --config.env PATH=/usr/bin:/bin --config.workingdir / >/dev/null
umoci gc --layout "$work/layout"
mkdir -p "$(dirname "$out")"
mv "$work/layout" "$out"
echo "demo image: oci:$out:latest"
