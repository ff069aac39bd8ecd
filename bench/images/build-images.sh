#!/usr/bin/env bash
# Builds the realistic benchmark images from Debian packages, as OCI layouts
# made with umoci, and caches them:
#
#   base layer   debootstrap --variant=minbase bookworm (one rootfs, shared)
#   layer 2      the image's packages (apt-get install in a chroot)
#   layer 3      the workload: /bench/run.sh, the image's default command
#
# Images: python3, node, scipy (numpy, scipy, pandas), gcc. Every workload
# ends by itself; after the build it is run once in a chroot of the image to
# check it works.
#
# Usage: build-images.sh [NAME...]   (default: all four)
# Cache: $NYD_BENCH_IMAGE_CACHE (default bench/.cache/images): one directory
#   per image, NAME/oci (the OCI layout, tag NAME) and NAME/build.json (recipe
#   version, packages, build seconds, layer count). An image whose build.json
#   has the current RECIPE and package list is not built again, so running
#   this twice is cheap.
# Mirror: $NYD_BENCH_MIRROR, else the first Debian URI in /etc/apt/sources.list*.
# Needs root, debootstrap, umoci, and the mirror reachable.
set -euo pipefail

RECIPE=1
SUITE=bookworm
ALL=(python3 node scipy gcc)
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${NYD_BENCH_IMAGE_CACHE:-$HERE/../.cache/images}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

die() { echo "build-images: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"
for bin in debootstrap umoci chroot mount; do command -v "$bin" >/dev/null || die "$bin not found (apt-get install -y debootstrap umoci)"; done

mirror() {
  if [ -n "${NYD_BENCH_MIRROR:-}" ]; then echo "$NYD_BENCH_MIRROR"; return; fi
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources) url
  url=$(cat "${files[@]}" 2>/dev/null | sed -nE 's/^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)([a-z]+:\/\/[^[:space:]]+).*/\3/p' \
    | grep -E '/debian/?$' | head -n 1 || true)
  [ -n "$url" ] || die "no Debian mirror in /etc/apt/sources.list*; set NYD_BENCH_MIRROR"
  echo "$url"
}

packages() {
  case "$1" in
    python3) echo "python3" ;;
    node) echo "nodejs ca-certificates" ;;
    scipy) echo "python3-numpy python3-scipy python3-pandas" ;;
    gcc) echo "gcc libc6-dev" ;;
    *) die "unknown image $1 (known: ${ALL[*]})" ;;
  esac
}

# The workload script, /bench/run.sh in the image.
workload() {
  echo '#!/bin/sh'
  echo 'set -e'
  case "$1" in
    python3) cat <<'EOF'
exec python3 -c '
import json, hashlib, sqlite3, zlib, email.message, xml.etree.ElementTree as ET
db = sqlite3.connect(":memory:")
db.execute("create table t (k integer, v text)")
db.executemany("insert into t values (?, ?)", [(i, hashlib.sha256(str(i).encode()).hexdigest()) for i in range(2000)])
n, = db.execute("select count(*) from t where v like ?", ("a%",)).fetchone()
root = ET.fromstring("<r><a>1</a><a>2</a></r>")
print(json.dumps({"rows_a": n, "xml": len(root), "crc": zlib.crc32(b"nyd")}))'
EOF
      ;;
    node) cat <<'EOF'
exec node -e '
const crypto = require("crypto"), zlib = require("zlib"), util = require("util");
const data = Buffer.alloc(1 << 20, "nyd");
const sum = crypto.createHash("sha256").update(zlib.gzipSync(data)).digest("hex");
const url = new URL("https://example.invalid/a?b=c");
console.log(JSON.stringify({ sum: sum.slice(0, 16), host: url.host, inspect: util.inspect({ a: [1, 2] }) }));'
EOF
      ;;
    scipy) cat <<'EOF'
exec python3 -c '
import numpy as np, scipy.linalg, scipy.stats, pandas as pd
a = np.random.default_rng(1).random((200, 200))
df = pd.DataFrame(a).describe()
print({"det_positive": bool(scipy.linalg.det(a + 200 * np.eye(200)) > 0), "mean": round(float(df.loc["mean"].mean()), 3),
       "t": round(float(scipy.stats.ttest_1samp(a[0], 0.5).statistic), 3)})'
EOF
      ;;
    gcc) cat <<'EOF'
dir=$(mktemp -d)
printf '#include <stdio.h>\nint main(void) { puts("hello from gcc"); return 0; }\n' > "$dir/hello.c"
gcc -O2 -o "$dir/hello" "$dir/hello.c"
"$dir/hello"
rm -rf "$dir"
EOF
      ;;
  esac
}

MOUNTS=()
cleanup_mounts() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
  MOUNTS=()
}
trap cleanup_mounts EXIT

# One minbase rootfs for every image's base layer.
base_rootfs() {
  local base=$CACHE/.base-$SUITE
  if [ ! -f "$base/done" ]; then
    rm -rf "$base"
    mkdir -p "$base"
    echo "build-images: debootstrap --variant=minbase $SUITE from $(mirror)" >&2
    debootstrap --variant=minbase "$SUITE" "$base/rootfs" "$(mirror)" >"$base/debootstrap.log" 2>&1 \
      || die "debootstrap failed, see $base/debootstrap.log"
    rm -rf "$base/rootfs/var/cache/apt/archives/"*.deb "$base/rootfs/var/lib/apt/lists/"*
    : >"$base/rootfs/etc/resolv.conf"
    echo bench >"$base/rootfs/etc/hostname"
    touch "$base/done"
  fi
  echo "$base/rootfs"
}

build_one() {
  local name=$1 pkgs start work layout bundle rootfs archives
  pkgs=$(packages "$name")
  if [ -f "$CACHE/$name/build.json" ] && grep -q "\"recipe\": $RECIPE," "$CACHE/$name/build.json" \
    && grep -qF "\"packages\": \"$pkgs\"" "$CACHE/$name/build.json"; then
    echo "build-images: $name cached ($(sed -nE 's/.*"seconds": ([0-9.]+).*/\1/p' "$CACHE/$name/build.json") s to build)"
    return
  fi
  start=$(date +%s.%N)
  local base
  base=$(base_rootfs)
  work=$CACHE/.work-$name
  layout=$work/oci
  bundle=$work/bundle
  rootfs=$bundle/rootfs
  archives=$CACHE/.apt-archives
  # A build killed hard may have left mounts under the work directory.
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n 1 umount -l
  rm -rf "$work"
  mkdir -p "$work" "$archives/partial"

  umoci init --layout "$layout"
  umoci new --image "$layout:$name"
  umoci unpack --image "$layout:$name" "$bundle" >/dev/null
  cp -a "$base/." "$rootfs/"
  umoci repack --refresh-bundle --history.created_by "debootstrap --variant=minbase $SUITE" --image "$layout:$name" "$bundle"

  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mount -t proc proc "$rootfs/proc" && MOUNTS+=("$rootfs/proc")
  mount --bind "$archives" "$rootfs/var/cache/apt/archives" && MOUNTS+=("$rootfs/var/cache/apt/archives")
  chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get -q update >"$work/apt.log" 2>&1 \
    && chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends install $pkgs >>"$work/apt.log" 2>&1 \
    || { cleanup_mounts; die "apt-get install $pkgs failed, see $work/apt.log"; }
  cleanup_mounts
  rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/var/log/apt" "$rootfs/var/log/dpkg.log"
  : >"$rootfs/etc/resolv.conf"
  umoci repack --refresh-bundle --history.created_by "apt-get install $pkgs" --image "$layout:$name" "$bundle"

  mkdir -p "$rootfs/bench"
  workload "$name" >"$rootfs/bench/run.sh"
  chmod 0755 "$rootfs/bench/run.sh"
  umoci repack --refresh-bundle --history.created_by "bench workload" --image "$layout:$name" "$bundle"
  umoci config --image "$layout:$name" --config.workingdir /bench \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.cmd /bin/sh --config.cmd /bench/run.sh
  umoci gc --layout "$layout"

  # The workload must run and end by itself (in the bundle, which is discarded).
  mount -t proc proc "$rootfs/proc" && MOUNTS+=("$rootfs/proc")
  local out
  out=$(cd "$rootfs" && timeout 300 chroot "$rootfs" /bin/sh -c 'cd /bench && ./run.sh' 2>&1) \
    || { cleanup_mounts; die "$name workload failed: $out"; }
  cleanup_mounts
  echo "build-images: $name workload says: $out"

  local seconds layers
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  layers=$(umoci stat --image "$layout:$name" --json | grep -o '"layer":{' | wc -l)
  rm -rf "${CACHE:?}/$name"
  mkdir -p "$CACHE/$name"
  mv "$layout" "$CACHE/$name/oci"
  printf '{"name": "%s", "recipe": %s, "seconds": %.1f, "layers": %s, "packages": "%s", "suite": "%s"}\n' \
    "$name" "$RECIPE" "$seconds" "$layers" "$pkgs" "$SUITE" >"$CACHE/$name/build.json"
  rm -rf "$work"
  echo "build-images: $name built in $(printf %.1f "$seconds") s"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
for n in "${names[@]}"; do build_one "$n"; done
