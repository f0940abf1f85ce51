#!/usr/bin/env bash
# Builds the Kubernetes CSI sidecars from their upstream Go modules, one small module of ours
# per sidecar (go.mod pins the release and repeats upstream's replace lines, which
# `go install module@version` would refuse). Output: OUT (default build/k8s/bin).
#   tools/csi-sidecars/build.sh [OUT]
set -euo pipefail
here=$(realpath "$(dirname "$0")")
out=$(realpath -m "${1:-$here/../../build/k8s/bin}")
mkdir -p "$out"
export CGO_ENABLED=0
for dir in "$here"/*/; do
  cd "$dir"
  # `tool X` or a `tool ( ... )` block, as go mod tidy writes one or several.
  for pkg in $(awk '$1=="tool" && $2!="(" {print $2} $1=="tool" && $2=="(" {b=1; next}
                    b && $1==")" {b=0} b {print $1}' go.mod); do
    ver=$(go list -m -f '{{.Version}}' "${pkg%%/cmd/*}")
    bin=${pkg##*/}
    stamp="$out/.$bin.version"
    [[ -x $out/$bin && -f $stamp && $(cat "$stamp") == "$ver" ]] && continue
    start=$SECONDS
    go build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$out/$bin" "$pkg"
    echo "$ver" >"$stamp"
    echo "built $bin $ver in $((SECONDS - start)) s"
  done
  # Our own stand-ins (node-sidecars/cmd/*), tagged "dev".
  for pkg in $( [[ -d cmd ]] && ls cmd); do
    start=$SECONDS
    go build -trimpath -ldflags "-s -w" -o "$out/$pkg" "./cmd/$pkg"
    echo dev >"$out/.$pkg.version"
    echo "built $pkg (stand-in) in $((SECONDS - start)) s"
  done
done
