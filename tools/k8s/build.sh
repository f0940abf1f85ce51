#!/usr/bin/env bash
# Builds Kubernetes' own binaries from the k8s.io/kubernetes module pinned in go.mod into
# OUT (default build/k8s/bin of the checkout). Skips binaries that are already there for the
# same release. Version stamps are set the way Kubernetes' own build sets them, since kubeadm
# and the API server compare versions.
#   tools/k8s/build.sh [OUT] [binary...]      (default: every binary in go.mod's tool block)
set -euo pipefail
here=$(realpath "$(dirname "$0")")
repo=$(realpath "$here/../..")
# shellcheck source=../../deploy/k8s/versions.env
. "$repo/deploy/k8s/versions.env"
out=$(realpath -m "${1:-$repo/build/k8s/bin}")
shift || true
mkdir -p "$out"
cd "$here"
want=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' go.mod)
[[ $want == "$K8S_VERSION" ]] || { echo "tools/k8s/go.mod pins k8s.io/kubernetes $want, versions.env says $K8S_VERSION" >&2; exit 1; }
bins=("$@")
if ((${#bins[@]} == 0)); then
  mapfile -t bins < <(sed -n '/^tool (/,/^)/p' go.mod | awk -F/ '/k8s.io\/kubernetes\/cmd\//{print $NF}')
  bins+=(etcd e2e.test)
fi
major=${K8S_VERSION#v}; minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
export CGO_ENABLED=0
# Everything missing in one `go build`: packages shared by the binaries are compiled once and
# the go command keeps both cores busy. e2e.test and etcd are built on their own.
todo=()
for b in "${bins[@]}"; do
  stamp="$out/.$b.version" # the release it was built from
  [[ -x $out/$b && -f $stamp && $(cat "$stamp") == "$K8S_VERSION" ]] || todo+=("$b")
done
cmds=()
for b in "${todo[@]}"; do
  [[ $b == e2e.test || $b == etcd ]] || cmds+=("k8s.io/kubernetes/cmd/$b")
done
if ((${#cmds[@]})); then
  start=$SECONDS
  go build -trimpath -ldflags "$ldflags" -o "$out/" "${cmds[@]}"
  for c in "${cmds[@]}"; do echo "$K8S_VERSION" >"$out/.${c##*/}.version"; done
  echo "built ${cmds[*]##*/} $K8S_VERSION in $((SECONDS - start)) s"
fi
for b in "${todo[@]}"; do
  start=$SECONDS
  case $b in
    e2e.test) go test -c -trimpath -ldflags "$ldflags" -o "$out/$b" k8s.io/kubernetes/test/e2e ;;
    # etcd at the version Kubernetes' own module graph pins (go.mod's tool block).
    etcd) go build -trimpath -ldflags "-s -w" -o "$out/$b" go.etcd.io/etcd/server/v3 ;;
    *) continue ;;
  esac
  echo "$K8S_VERSION" >"$out/.$b.version"
  echo "built $b $K8S_VERSION in $((SECONDS - start)) s"
done
