#!/usr/bin/env bash
# Build the real node's cluster DNS (CoreDNS, e2e/cluster/corednsbin) from Go modules.
#
#   e2e/cluster/build-dns.sh            build what is missing, print the bin directory
#   e2e/cluster/build-dns.sh --force    rebuild
#
# Output: $KUBESWEEP_CACHE (default ~/.cache/kubesweep)/bin/<key>/coredns, where <key>
# names the CoreDNS version and a hash of the module's sources: one build per pin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
COREDNS_VERSION="$(grep -oE "github.com/coredns/coredns v[^ ]+" "$here/corednsbin/go.mod" | cut -d" " -f2)"
cache="${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}"
src_hash="$(cat "$0" "$here"/corednsbin/*.go "$here"/corednsbin/go.mod | sha256sum | cut -c1-10)"
key="dns-coredns-${COREDNS_VERSION}_${src_hash}"
out="$cache/bin/$key"
force=0
[[ "${1:-}" == "--force" ]] && force=1
if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build-dns.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$cache/bin/.build-dns.lock"
flock 9
if [[ $force == 0 && -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
log="$cache/bin/build-$key.log"
start=$(date +%s)
echo "build-dns.sh: building $key (log: $log)" >&2
(cd "$here/corednsbin" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -p "${KUBESWEEP_BUILD_JOBS:-$(nproc)}" \
  -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" .) >"$log" 2>&1 \
  || { echo "build-dns.sh: build failed, see $log" >&2; tail -30 "$log" >&2; exit 1; }
mv "$out/coredns.tmp" "$out/coredns"
printf 'key=%s\nseconds=%s\ncoredns_bytes=%s\n' "$key" "$(($(date +%s) - start))" \
  "$(stat -c %s "$out/coredns")" >"$out/.complete"
echo "$out"
