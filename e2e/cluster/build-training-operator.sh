#!/usr/bin/env bash
# Build Kubeflow's training-operator (v1) controller manager from its Go module
# (e2e/cluster/trainingopbin pins it), for the local cluster's PyTorchJob trials.
# Keyed apart from build-controllers.sh, so that adding it leaves that build's
# cache key, and its binaries, as they are.
#
#   e2e/cluster/build-training-operator.sh            build what is missing, print the bin directory
#   e2e/cluster/build-training-operator.sh --force    rebuild
#   e2e/cluster/build-training-operator.sh --check    print the bin directory if built, else exit 1
#
# Output: $KUBESWEEP_CACHE (default ~/.cache/kubesweep)/bin/<key>/training-operator and
# manifests/training-operator/: the release's own kustomize trees (CRDs, RBAC), copied
# from its module so that they always match the binary. <key> names the pinned version
# and a hash of this script and the module files. A build that fails leaves no stamp.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module=github.com/kubeflow/training-operator
VERSION="$(awk -v m="$module" '$1==m && $2 ~ /^v/{print $2}' "$here/trainingopbin/go.mod")"
cache="${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}"
BUILD_REV=1
src_hash="$( (echo "$BUILD_REV"; cat "$0" "$here"/trainingopbin/go.{mod,sum}) | sha256sum | cut -c1-10)"
key="training-operator-${VERSION}_${src_hash}"
out="$cache/bin/$key"
case "${1:-}" in
  --check) [[ -f "$out/.complete" ]] && echo "$out" && exit 0; exit 1 ;;
  --force) rm -f "$out/.complete" ;;
esac
if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build-training-operator.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$cache/bin/.build-training-operator.lock"
flock 9
if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
log="$cache/bin/build-$key.log"
export GOFLAGS=-mod=mod CGO_ENABLED=0
jobs="${KUBESWEEP_BUILD_JOBS:-$(nproc)}"
start=$(date +%s)
echo "build-training-operator.sh: building $key (log: $log)" >&2
build() {
  echo "== $(date -u +%FT%TZ) building $key with $(go version) -p $jobs"
  (cd "$here/trainingopbin" && go build -p "$jobs" -trimpath -ldflags "-s -w" \
    -o "$out/training-operator.tmp" "$module/cmd/training-operator.v1") || return 1
  mv "$out/training-operator.tmp" "$out/training-operator" || return 1
  local src
  src="$(cd "$here/trainingopbin" && go list -m -f '{{.Dir}}' "$module")" || return 1
  rm -rf "$out/manifests/training-operator" && mkdir -p "$out/manifests" || return 1
  cp -r "$src/manifests" "$out/manifests/training-operator" || return 1
  chmod -R u+w "$out/manifests/training-operator"
}
build >"$log" 2>&1 || { echo "build-training-operator.sh: build failed, see $log" >&2; tail -30 "$log" >&2; exit 1; }
printf 'key=%s\nseconds=%s\ntraining_operator_bytes=%s\n' "$key" "$(($(date +%s) - start))" \
  "$(stat -c %s "$out/training-operator")" >"$out/.complete"
cat "$out/.complete" >>"$log"
echo "$out"
