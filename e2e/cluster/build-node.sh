#!/usr/bin/env bash
# Build the real node's binaries from Go modules into a cache outside the repo.
#
#   e2e/cluster/build-node.sh            build what is missing, print the bin directory
#   e2e/cluster/build-node.sh --force    rebuild
#
# Output: $KUBESWEEP_CACHE (default ~/.cache/kubesweep)/bin/<key>/ with
#   nodebin (kubelet + kube-proxy, k8s.io/kubernetes at the control plane's release;
#            symlinks kubelet, kube-proxy), pause (the sandbox's program),
#   containerd, containerd-shim-runc-v2, ctr (containerd v2, cgo, -tags no_btrfs).
# runc and the CNI plugins come from Debian packages (runc, containernetworking-plugins).
# <key> names the pinned versions and a hash of the module sources: one build per pin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
KUBE_VERSION="$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/nodebin/go.mod")"
CONTAINERD_VERSION="$(awk '$1=="github.com/containerd/containerd/v2"{print $2}' "$here/containerdbin/go.mod")"
cache="${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}"
BUILD_REV=1
src_hash="$( (echo "$BUILD_REV"; cat "$0" "$here"/nodebin/*.go "$here"/nodebin/pause/*.go "$here"/nodebin/go.mod \
  "$here"/containerdbin/go.mod) | sha256sum | cut -c1-10)"
key="node-k8s-${KUBE_VERSION}_containerd-${CONTAINERD_VERSION}_${src_hash}"
out="$cache/bin/$key"
force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build-node.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$cache/bin/.build-node.lock"
if ! flock -n 9; then
  echo "build-node.sh: another build is running; waiting for it" >&2
  flock 9
fi
if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
log="$cache/bin/build-$key.log"
export GOFLAGS=-mod=mod
jobs="${KUBESWEEP_BUILD_JOBS:-$(nproc)}"
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
kver=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kver+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
cver="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
start=$(date +%s)
echo "build-node.sh: building $key (warm Go cache: 3-5 min on 2 cores; log: $log)" >&2
{
  echo "== $(date -u +%FT%TZ) building $key with $(go version) -p $jobs"
  (cd "$here/nodebin" && CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "-s -w $kver" -o "$out/nodebin.tmp" .)
  mv "$out/nodebin.tmp" "$out/nodebin"
  (cd "$here/nodebin" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/pause" ./pause)
  t1=$(date +%s)
  echo "== nodebin and pause built in $((t1 - start))s"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    (cd "$here/containerdbin" && CGO_ENABLED=1 go build -p "$jobs" -trimpath -tags no_btrfs \
      -ldflags "-s -w $cver" -o "$out/$cmd.tmp" "github.com/containerd/containerd/v2/cmd/$cmd")
    mv "$out/$cmd.tmp" "$out/$cmd"
  done
  t2=$(date +%s)
  echo "== containerd built in $((t2 - t1))s"
} >"$log" 2>&1 || { echo "build-node.sh: build failed, see $log" >&2; tail -30 "$log" >&2; exit 1; }
ln -sf nodebin "$out/kubelet"
ln -sf nodebin "$out/kube-proxy"
end=$(date +%s)
printf 'key=%s\nseconds=%s\nnodebin_bytes=%s\ncontainerd_bytes=%s\n' "$key" "$((end - start))" \
  "$(stat -c %s "$out/nodebin")" "$(stat -c %s "$out/containerd")" >"$out/.complete"
cat "$out/.complete" >>"$log"
ln -sfn "$key" "$cache/bin/current-node"
echo "$out"
