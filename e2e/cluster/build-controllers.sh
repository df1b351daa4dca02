#!/usr/bin/env bash
# Build the local cluster's optional workload controllers from Go modules: the JobSet
# controller manager (e2e/cluster/jobsetbin), and the Kueue and Kubeflow Trainer
# controller managers (e2e/cluster/kueuebin), each from its release's own `main` package.
#
#   e2e/cluster/build-controllers.sh            build what is missing, print the bin directory
#   e2e/cluster/build-controllers.sh --force    rebuild
#   e2e/cluster/build-controllers.sh --check    print the bin directory if built, else exit 1
#
# Output: $KUBESWEEP_CACHE (default ~/.cache/kubesweep)/bin/<key>/ with the binaries
# jobset, kueue and trainer, and manifests/<name>/: each release's own kustomize trees
# (CRDs, RBAC, webhooks), copied from its module so that they always match the binary.
# <key> names the pinned versions and a hash of the module files: one build per pin.
# A build that fails leaves no stamp and is retried.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version_of() { awk -v m="$2" '$1==m && $2 ~ /^v/{print $2}' "$here/$1/go.mod"; }
JOBSET_VERSION="$(version_of jobsetbin sigs.k8s.io/jobset)"
KUEUE_VERSION="$(version_of kueuebin sigs.k8s.io/kueue)"
TRAINER_VERSION="$(version_of kueuebin github.com/kubeflow/trainer/v2)"
cache="${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}"
BUILD_REV=1
src_hash="$( (echo "$BUILD_REV"; cat "$0" "$here"/jobsetbin/go.{mod,sum} "$here"/kueuebin/go.{mod,sum}) \
  | sha256sum | cut -c1-10)"
key="controllers-jobset-${JOBSET_VERSION}_kueue-${KUEUE_VERSION}_trainer-${TRAINER_VERSION}_${src_hash}"
out="$cache/bin/$key"
force=0
case "${1:-}" in
  --force) force=1 ;;
  --check) [[ -f "$out/.complete" ]] && echo "$out" && exit 0; exit 1 ;;
esac

if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build-controllers.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$cache/bin/.build-controllers.lock"
if ! flock -n 9; then
  echo "build-controllers.sh: another build is running; waiting for it" >&2
  flock 9
fi
if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
rm -f "$out/.complete"
log="$cache/bin/build-$key.log"
export GOFLAGS=-mod=mod CGO_ENABLED=0
jobs="${KUBESWEEP_BUILD_JOBS:-$(nproc)}"

# build NAME MODULE_DIR MAIN_PACKAGE VERSION_PACKAGE(or -) VERSION SOURCE_MODULE MANIFEST_TREE
build() {
  local name=$1 dir=$2 pkg=$3 vpkg=$4 version=$5 module=$6 tree=$7 flags="-s -w" src t0
  t0=$(date +%s)
  [[ $vpkg != - ]] && flags+=" -X $vpkg.GitVersion=$version -X $vpkg.GitCommit=$version"
  (cd "$here/$dir" && go build -p "$jobs" -trimpath -ldflags "$flags" -o "$out/$name.tmp" "$pkg") || return 1
  mv "$out/$name.tmp" "$out/$name" || return 1
  src="$(cd "$here/$dir" && go list -m -f '{{.Dir}}' "$module")" || return 1
  rm -rf "$out/manifests/$name" && mkdir -p "$out/manifests" || return 1
  cp -r "$src/$tree" "$out/manifests/$name" && chmod -R u+w "$out/manifests/$name" || return 1
  echo "== $name $version built in $(($(date +%s) - t0))s (manifests: $module/$tree)"
}

build_all() {
  echo "== $(date -u +%FT%TZ) building $key with $(go version) -p $jobs"
  build jobset jobsetbin sigs.k8s.io/jobset sigs.k8s.io/jobset/pkg/version \
    "$JOBSET_VERSION" sigs.k8s.io/jobset config || return 1
  build kueue kueuebin sigs.k8s.io/kueue/cmd/kueue sigs.k8s.io/kueue/pkg/version \
    "$KUEUE_VERSION" sigs.k8s.io/kueue config || return 1
  build trainer kueuebin github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager - \
    "$TRAINER_VERSION" github.com/kubeflow/trainer/v2 manifests || return 1
}

start=$(date +%s)
echo "build-controllers.sh: building $key (log: $log)" >&2
build_all >"$log" 2>&1 || { echo "build-controllers.sh: build failed, see $log" >&2; tail -30 "$log" >&2; exit 1; }
printf 'key=%s\nseconds=%s\njobset_bytes=%s\nkueue_bytes=%s\ntrainer_bytes=%s\n' "$key" "$(($(date +%s) - start))" \
  "$(stat -c %s "$out/jobset")" "$(stat -c %s "$out/kueue")" "$(stat -c %s "$out/trainer")" >"$out/.complete"
cat "$out/.complete" >>"$log"
echo "$out"
