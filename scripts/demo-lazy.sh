#!/usr/bin/env bash
# nyd's lazy-start demo: a converted nyd image is pushed to a private
# docker-registry, pulled lazily by a private containerd through nyd's
# snapshotter (`ctr-remote images rpull`), and run. Prints the container's
# output, the start time (rpull + run) and the bytes fetched from the
# registry against the image's size, then stops everything it started (by
# pid) and removes its temporary directory. Run as root on Debian 12.
#
# Usage: scripts/demo-lazy.sh [LAYOUT [TAG]]
#   LAYOUT  a nyd image as an OCI layout (default .nyd-demo/nyd, built from
#           the demo image by scripts/make-demo-image.sh + nyd convert when absent)
#   TAG     its tag in the layout (default latest)
set -euo pipefail
cd "$(dirname "$0")/.."
repo_dir=$PWD
layout=${1:-.nyd-demo/nyd}
tag=${2:-latest}
ns=nyd-demo
image_repo=demo/nyd

die() { echo "demo-lazy: $*" >&2; exit 1; }
say() { echo "== $*"; }

[ "$(id -u)" = 0 ] || die "run as root (containerd, runc, FUSE and mounts need it)"
for c in node containerd ctr ctr-remote runc docker-registry skopeo umoci fusermount; do
  command -v "$c" >/dev/null || die "$c is not installed (see scripts/setup.sh)"
done
[ -f dist/snapshotter/remote/index.js ] && [ -f dist/cli/main.js ] || die "dist/ is missing: run npx tsc -p tsconfig.json"

work=$(mktemp -d /tmp/nyd-demo-lazy.XXXXXX)
registry_pid='' snapshotter_pid='' containerd_pid=''
sock=$work/containerd/containerd.sock

# Ends a process we started: SIGTERM, up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid=$1 grace=${2:-10} i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "demo-lazy: pid $pid did not stop, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo; }

cleanup() {
  local rc=$? pid m cmd left
  set +e
  trap - EXIT INT TERM
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
    for t in $(ctr -a "$sock" -n $ns tasks ls -q 2>/dev/null); do
      ctr -a "$sock" -n $ns tasks kill -s SIGKILL "$t" >/dev/null 2>&1; ctr -a "$sock" -n $ns tasks rm -f "$t" >/dev/null 2>&1
    done
    for c in $(ctr -a "$sock" -n $ns containers ls -q 2>/dev/null); do ctr -a "$sock" -n $ns containers rm "$c" >/dev/null 2>&1; done
    # Removing the image lets containerd's GC remove the snapshots: the snapshotter unmounts the image.
    for i in $(ctr -a "$sock" -n $ns images ls -q 2>/dev/null); do ctr -a "$sock" -n $ns images rm --sync "$i" >/dev/null 2>&1; done
  fi
  stop_pid "$containerd_pid" 10
  # Shims started by our containerd name its socket on their command line.
  for pid in $(grep -lsF "$sock" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)
    case "$cmd" in containerd-shim*) kill -KILL "$pid" 2>/dev/null ;; esac
  done
  stop_pid "$snapshotter_pid" 20
  stop_pid "$registry_pid" 5
  left=$(mounts_under "$work" | sort -r)
  for m in $left; do fusermount -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  if [ -n "$left" ]; then echo "demo-lazy: had to detach leftover mounts: $left" >&2; [ $rc = 0 ] && rc=1; fi
  if [ $rc != 0 ] && [ -f "$work/snapshotter.log" ]; then
    echo "--- last lines of the snapshotter log:" >&2; tail -n 15 "$work/snapshotter.log" >&2
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $1 seconds for the command "${@:2}" to succeed.
wait_for() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

if [ ! -f "$layout/index.json" ]; then
  [ $# -eq 0 ] || die "$layout is not an OCI layout"
  say "building the demo image (scripts/make-demo-image.sh) and converting it"
  bash scripts/make-demo-image.sh .nyd-demo/src >/dev/null
  bin/nyd convert oci:.nyd-demo/src:latest "oci:$layout:latest" >/dev/null
fi

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
ref=127.0.0.1:$port/$image_repo:$tag
say "registry on 127.0.0.1:$port"
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
wait_for 20 node -e "fetch('http://127.0.0.1:$port/v2/').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" ||
  die "the registry did not start: $(tail -n 5 "$work/registry.log")"

say "pushing oci:$layout:$tag to $ref"
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$layout:$tag" "docker://$ref" >"$work/push.log" 2>&1 ||
  die "push failed: $(tail -n 5 "$work/push.log")"

say "starting nyd's snapshotter"
node scripts/nyd-snapshotter-dev.js --root "$work/nyd" --address "$work/nyd.sock" --cache-dir "$work/cache" \
  --status-interval 250 >"$work/snapshotter.log" 2>&1 &
snapshotter_pid=$!
wait_for 30 grep -q '"msg":"ready"' "$work/snapshotter.log" || die "the snapshotter did not start"

say "starting containerd (own root, state and socket; nyd as proxy snapshotter)"
mkdir -p "$work/containerd"
cat >"$work/containerd/config.toml" <<EOF
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/containerd/opt"
[proxy_plugins.nyd]
  type = "snapshot"
  address = "$work/nyd.sock"
EOF
containerd --config "$work/containerd/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
wait_for 30 ctr -a "$sock" version || die "containerd did not start: $(tail -n 5 "$work/containerd.log")"

say "ctr-remote images rpull --snapshotter nyd $ref, then ctr run"
t0=$(date +%s.%N)
ctr-remote -a "$sock" -n $ns images rpull --plain-http --snapshotter nyd "$ref" >"$work/rpull.log" 2>&1 ||
  die "rpull failed: $(tail -n 5 "$work/rpull.log")"
t1=$(date +%s.%N)
output=$(ctr -a "$sock" -n $ns run --snapshotter nyd --rm "$ref" nyd-demo-1 2>"$work/run.log") ||
  die "ctr run failed: $(tail -n 5 "$work/run.log")"
t2=$(date +%s.%N)

sleep 0.6 # one status period: the status file then holds the counters after the run
shopt -s nullglob
statuses=("$work"/nyd/mounts/*.status.json)
shopt -u nullglob
[ ${#statuses[@]} -gt 0 ] || die "no image was mounted lazily: is oci:$layout:$tag a nyd image (nyd convert)? The container printed: $output"
status=${statuses[0]}

echo
echo "container output:"
echo "$output" | sed 's/^/  /'
NYD_T0=$t0 NYD_T1=$t1 NYD_T2=$t2 node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const e = process.env, mb = (n) => (n / 1e6).toFixed(1) + " MB";
  const pull = e.NYD_T1 - e.NYD_T0, run = e.NYD_T2 - e.NYD_T1;
  console.log(`start time:       ${(pull + run).toFixed(2)} s (rpull ${pull.toFixed(2)} s + run ${run.toFixed(2)} s)`);
  console.log(`fetched:          ${mb(s.stats.fetchBytes)} of ${mb(s.blobBytes)} of blobs (${(100 * s.stats.fetchBytes / s.blobBytes).toFixed(1)} %) in ${s.stats.fetchRequests} range requests`);
  console.log(`image:            ${s.files} files in ${s.blobs} blob(s), manifest ${s.manifest}`);
  console.log(`prefetch:         ${s.prefetch.mode} (${s.prefetch.state})`);
' "$status"
echo
say "cleaning up"
