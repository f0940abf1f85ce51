# Installs into the running test cluster (sourced by scripts/k8s, which defines LBCSI_REPO,
# BIN, STATE, NODES, SIM_DIR and the helpers log/die/on/node_ip/wait_for):
#   1. the VolumeSnapshot CRDs and snapshot-controller, from the external-snapshotter module
#      that tools/csi-sidecars pins (its own manifests, our image);
#   2. lightos-sim on the control-plane node (host network, grpcs with a throwaway CA, one
#      JWT), its volume files in SIM_DIR, the directory every node shares;
#   3. the lbcsi chart with helm: tests/k8s/values.yaml (our images, container-mode helper
#      with the loop transport on SIM_DIR), the CA as a ConfigMap;
#   4. the JWT Secret, a StorageClass, a VolumeSnapshotClass (tests/k8s/manifests/).
# Writes $STATE/test.env (endpoint, names) for the tests.

install_start=$SECONDS
NS=kube-system
snapshotter_dir=$(cd "$LBCSI_REPO/tools/csi-sidecars/external-snapshotter" &&
  go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/v8)
snapshotter_client_dir=$(cd "$LBCSI_REPO/tools/csi-sidecars/external-snapshotter" &&
  go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)
snapshot_controller_image=lbcsi.local/snapshot-controller:$(cat "$BIN/.snapshot-controller.version")

log "snapshot CRDs and snapshot-controller ($snapshot_controller_image)"
kubectl apply --server-side -f "$snapshotter_client_dir/config/crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml" \
  -f "$snapshotter_client_dir/config/crd/snapshot.storage.k8s.io_volumesnapshotcontents.yaml" \
  -f "$snapshotter_client_dir/config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml" >/dev/null
kubectl apply -f "$snapshotter_dir/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml" >/dev/null
sed -e "s|image: .*snapshot-controller:.*|image: $snapshot_controller_image|" \
  -e 's|imagePullPolicy: .*|imagePullPolicy: Never|' \
  "$snapshotter_dir/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml" |
  kubectl apply -f - >/dev/null

# lightos-sim: certificate for the control-plane node's address, one token.
cp_ip=$(node_ip "${NODES[0]}")
sim_bin=$K8S_DIR/lbcsi/tests/lightos-sim/lightos-sim
mkdir -p "$STATE/pki"
"$sim_bin" gen-certs --dir "$STATE/pki" --ip "$cp_ip" --dns lightos-sim >"$STATE/gen-certs.log" 2>&1 ||
  die "lightos-sim gen-certs failed"
jwt=lbcsi-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
mgmt=$cp_ip:7443
kubectl -n $NS create secret tls lightos-sim-tls --cert "$STATE/pki/server.crt" \
  --key "$STATE/pki/server.key" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n $NS create secret generic lightos-sim-jwt --from-literal=jwt="$jwt" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n $NS create configmap lightos-ca --from-file=ca.crt="$STATE/pki/ca.crt" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# CSI inline ephemeral volumes: the node-wide configuration (cluster, token, limits).
jq -n --arg ep "$mgmt" '{mgmt_endpoints: $ep, scheme: "grpcs", project: "default",
  ca_bundle_file: "/etc/lbcsi/ephemeral/ca.crt", token_file: "/etc/lbcsi/ephemeral-token/jwt",
  insecure_skip_verify: false, max_size: "4Gi", default_size: "1Gi", default_replica_count: 1,
  max_replica_count: 1, default_compression: false, default_fs_type: "ext4"}' >"$STATE/ephemeral.json"
kubectl -n $NS create configmap lbcsi-ephemeral-config --from-file=config.json="$STATE/ephemeral.json" \
  --from-file=ca.crt="$STATE/pki/ca.crt" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n $NS create secret generic lbcsi-ephemeral-jwt --type=lightbitslabs.com/jwt \
  --from-literal=jwt="$jwt" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
sed -e "s|@SIM_DIR@|$SIM_DIR|g" -e "s|@CONTROL_PLANE@|${NODES[0]}|g" \
  "$LBCSI_REPO/tests/k8s/manifests/lightos-sim.yaml" | kubectl apply -f - >/dev/null

log "helm install lbcsi (chart deploy/helm/lbcsi)"
helm upgrade --install lbcsi "$LBCSI_REPO/deploy/helm/lbcsi" -n $NS \
  -f "$LBCSI_REPO/tests/k8s/values.yaml" --set helper.simDataDir="$SIM_DIR" \
  --set-string "images.provisioner=lbcsi.local/csi-provisioner:$(cat "$BIN/.csi-provisioner.version")" \
  --set-string "images.attacher=lbcsi.local/csi-attacher:$(cat "$BIN/.csi-attacher.version")" \
  --set-string "images.resizer=lbcsi.local/csi-resizer:$(cat "$BIN/.csi-resizer.version")" \
  --set-string "images.snapshotter=lbcsi.local/csi-snapshotter:$(cat "$BIN/.csi-snapshotter.version")" \
  >"$STATE/helm-install.log" 2>&1 || { cat "$STATE/helm-install.log" >&2; die "helm install failed"; }

# The user's objects: the JWT Secret the StorageClass names, the classes.
sed -e "s|@MGMT@|$mgmt|g" -e "s|@JWT@|$jwt|g" "$LBCSI_REPO/tests/k8s/manifests/classes.yaml" |
  kubectl apply -f - >/dev/null

kubectl -n $NS rollout status deploy/lightos-sim --timeout=180s >/dev/null || die "lightos-sim not ready"
kubectl -n $NS rollout status ds/lbcsi-helper --timeout=300s >/dev/null || die "lbcsi-helper not ready"
kubectl -n $NS rollout status ds/lbcsi-node --timeout=300s >/dev/null || die "lbcsi-node not ready"
kubectl -n $NS rollout status deploy/lbcsi-controller --timeout=300s >/dev/null || die "lbcsi-controller not ready"
kubectl -n $NS rollout status deploy/snapshot-controller --timeout=300s >/dev/null || die "snapshot-controller not ready"
cat >"$STATE/test.env" <<EOF
LBCSI_K8S_MGMT=$mgmt
EOF
log "installed in $((SECONDS - install_start)) s"
