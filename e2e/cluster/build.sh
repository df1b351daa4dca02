#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules into a cache outside the repo.
#
#   e2e/cluster/build.sh            build what is missing, print the bin directory
#   e2e/cluster/build.sh --force    rebuild
#
# Output: $KUBESWEEP_CACHE (default ~/.cache/kubesweep)/bin/<key>/{kubebin,helm,...}
# where <key> names the pinned versions and a hash of the wrapper sources, so a
# build happens once per pin. A build that fails leaves no stamp and is retried.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
KUBE_VERSION="$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/kubebin/go.mod")"
HELM_VERSION="$(awk '$1=="helm.sh/helm/v3"{print $2}' "$here/helmbin/go.mod")"
cache="${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}"
# Bump BUILD_REV when this script changes what it builds (flags), so caches rebuild.
BUILD_REV=2
src_hash="$( (echo "$BUILD_REV"; cat "$here"/kubebin/*.go "$here"/kubebin/go.mod "$here"/helmbin/go.mod) \
  | sha256sum | cut -c1-10)"
key="k8s-${KUBE_VERSION}_helm-${HELM_VERSION}_${src_hash}"
out="$cache/bin/$key"
force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$out"
# One build at a time per cache (a test session and `make dev-cluster` may race).
exec 9>"$cache/bin/.build.lock"
if ! flock -n 9; then
  echo "build.sh: another build is running; waiting for it" >&2
  flock 9
fi
if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
log="$cache/bin/build-$key.log"
export GOFLAGS=-mod=mod CGO_ENABLED=0
# Two cores: -p 2 keeps the compile jobs to the cores we have without starving the linker.
jobs="${KUBESWEEP_BUILD_JOBS:-$(nproc)}"
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
kver=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kver+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
hver="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
start=$(date +%s)
echo "build.sh: building $key (cold: 25-40 min on 2 cores; log: $log)" >&2
{
  echo "== $(date -u +%FT%TZ) building $key with $(go version) -p $jobs"
  (cd "$here/kubebin" && go build -p "$jobs" -trimpath -ldflags "-s -w $kver" -o "$out/kubebin.tmp" .)
  mv "$out/kubebin.tmp" "$out/kubebin"
  t1=$(date +%s)
  echo "== kubebin built in $((t1 - start))s"
  (cd "$here/helmbin" && go build -p "$jobs" -trimpath -ldflags "-s -w $hver" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$out/helm.tmp" "$out/helm"
  t2=$(date +%s)
  echo "== helm built in $((t2 - t1))s"
} >"$log" 2>&1 || { echo "build.sh: build failed, see $log" >&2; tail -30 "$log" >&2; exit 1; }
for c in apiserver controller-manager scheduler; do ln -sf kubebin "$out/kube-$c"; done
ln -sf kubebin "$out/kubectl"
ln -sf kubebin "$out/etcd"
end=$(date +%s)
printf 'key=%s\nseconds=%s\nkubebin_bytes=%s\nhelm_bytes=%s\n' "$key" "$((end - start))" \
  "$(stat -c %s "$out/kubebin")" "$(stat -c %s "$out/helm")" >"$out/.complete"
cat "$out/.complete" >>"$log"
ln -sfn "$key" "$cache/bin/current"
echo "$out"
