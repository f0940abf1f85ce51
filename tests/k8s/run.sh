# The cluster tests (sourced by scripts/k8s after install; KUBECONFIG points at the cluster).
# Each test_* function is one case; it fails by returning non-zero (see expect/fail).
# LBCSI_K8S_TESTS="name ..." runs only those. Ends with "N passed, N failed".
#
# Objects go into a namespace of their own per case, deleted afterwards; the PVs go with
# their PVCs (reclaimPolicy Delete), so lightos-sim ends empty (checked last).

TEST_NS_PREFIX=lbcsi-test
WORKERS=("${NODES[1]}" "${NODES[2]}")
# shellcheck disable=SC1091
. "$STATE/test.env"

fail() {
  log "  FAIL: $*"
  return 1
}

# A namespace for one case.
new_ns() {
  local ns=$TEST_NS_PREFIX-$1
  kubectl create namespace "$ns" >/dev/null
  echo "$ns"
}

# pod_yaml NAME NODE CLAIM COMMAND: a pod of the Debian base image (lbcsi.local/shell) that
# mounts CLAIM at /data on NODE and runs COMMAND.
pod_yaml() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  nodeName: $2
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: c
      image: lbcsi.local/shell:dev
      imagePullPolicy: Never
      command:
        - /bin/sh
        - -c
        - |
          $4
      volumeMounts: [{name: v, mountPath: /data}]
  volumes:
    - name: v
      persistentVolumeClaim: {claimName: $3}
EOF
}

pvc_yaml() { # NAME SIZE [extra spec lines]
  cat <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $1}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: lbcsi
  resources: {requests: {storage: $2}}
${3:-}
EOF
}

# wait_pod_done NS POD SECONDS: the pod Succeeded (returns 1 and logs why otherwise).
wait_pod_done() {
  local ns=$1 pod=$2 deadline=$((SECONDS + $3)) phase
  while ((SECONDS < deadline)); do
    phase=$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null)
    case $phase in
      Succeeded) return 0 ;;
      Failed)
        kubectl -n "$ns" logs "$pod" >&2 || true
        fail "pod $pod failed"
        return 1
        ;;
    esac
    sleep 2
  done
  kubectl -n "$ns" describe pod "$pod" | tail -20 >&2
  fail "pod $pod not done after $3 s (phase $phase)"
}

# ---------- cases ----------

# The chart with its defaults (plus the test values): every pod Ready and no restart for
# two minutes.
test_chart_pods_ready_without_restarts() {
  local sel='app.kubernetes.io/name=lbcsi' out
  kubectl -n kube-system wait --for=condition=Ready pod -l "$sel" --timeout=120s >/dev/null ||
    fail "lbcsi pods not Ready: $(kubectl -n kube-system get pods -l "$sel")" || return 1
  local want=$((2 * ${#NODES[@]} + 2)) # helper + node on each node, 2 controllers
  local n
  n=$(kubectl -n kube-system get pods -l "$sel" --no-headers | wc -l)
  ((n == want)) || fail "$n lbcsi pods, expected $want" || return 1
  sleep "${LBCSI_K8S_STABLE_SECONDS:-120}"
  out=$(kubectl -n kube-system get pods -l "$sel" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{range .status.containerStatuses[*]}{.restartCount}{" "}{.ready}{" "}{end}{"\n"}{end}')
  if grep -Eq ' [1-9][0-9]* | false' <<<"$out"; then
    fail "restarts or unready containers: $out"
    return 1
  fi
}

# Prometheus /metrics of the controller and of every agent answer on their pod IPs.
test_metrics_scraped_from_every_component() {
  local ip pod n=0
  for pod in $(kubectl -n kube-system get pods -l 'app.kubernetes.io/name=lbcsi' \
    -o jsonpath='{range .items[?(@.spec.hostNetwork!=true)]}{.metadata.name}{"\n"}{end}'); do
    ip=$(kubectl -n kube-system get pod "$pod" -o jsonpath='{.status.podIP}')
    # From the control-plane node: pod IPs are routed between the nodes.
    on "${NODES[0]}" sh -c "exec 3<>/dev/tcp/$ip/9810 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" |
      grep -q '^lbcsi_' || fail "no lbcsi_ metrics from $pod ($ip:9810)" || return 1
    n=$((n + 1))
  done
  ((n == ${#NODES[@]} + 2)) || fail "scraped $n pods" || return 1
}

# A PVC written by a pod on one worker and read by a pod on the other: the attachment moves
# (ControllerUnpublish from A, ControllerPublish to B) and the data stays.
test_pvc_moves_between_workers_with_its_data() {
  local ns
  ns=$(new_ns move)
  pvc_yaml data 1Gi | kubectl -n "$ns" apply -f - >/dev/null
  pod_yaml writer "${WORKERS[0]}" data 'echo lbcsi-$(hostname) > /data/f && sync && cat /data/f' |
    kubectl -n "$ns" apply -f - >/dev/null
  wait_pod_done "$ns" writer 240 || return 1
  local written pv
  written=$(kubectl -n "$ns" logs writer)
  pv=$(kubectl -n "$ns" get pvc data -o jsonpath='{.spec.volumeName}')
  kubectl -n "$ns" delete pod writer --wait >/dev/null
  pod_yaml reader "${WORKERS[1]}" data 'cat /data/f' | kubectl -n "$ns" apply -f - >/dev/null
  wait_pod_done "$ns" reader 240 || return 1
  [[ $(kubectl -n "$ns" logs reader) == "$written" ]] ||
    fail "reader saw '$(kubectl -n "$ns" logs reader)', writer wrote '$written'" || return 1
  local nodes
  nodes=$(kubectl get volumeattachment -o jsonpath="{range .items[?(@.spec.source.persistentVolumeName=='$pv')]}{.spec.nodeName}{'\n'}{end}")
  [[ $nodes == "${WORKERS[1]}" ]] || fail "VolumeAttachments of $pv: '$nodes'" || return 1
  kubectl delete namespace "$ns" --wait >/dev/null
}

# Snapshot of a written volume, a PVC restored from it and a clone of the PVC: both carry
# the data.
test_snapshot_restore_and_clone_carry_the_data() {
  local ns
  ns=$(new_ns snap)
  pvc_yaml src 1Gi | kubectl -n "$ns" apply -f - >/dev/null
  pod_yaml writer "${WORKERS[0]}" src 'echo snapshot-data > /data/f && sync' | kubectl -n "$ns" apply -f - >/dev/null
  wait_pod_done "$ns" writer 240 || return 1
  kubectl -n "$ns" delete pod writer --wait >/dev/null
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: snap}
spec:
  volumeSnapshotClassName: lbcsi
  source: {persistentVolumeClaimName: src}
EOF
  kubectl -n "$ns" wait --for=jsonpath='{.status.readyToUse}'=true volumesnapshot/snap --timeout=180s >/dev/null ||
    fail "snapshot not ready: $(kubectl -n "$ns" describe volumesnapshot snap | tail -5)" || return 1
  pvc_yaml restored 1Gi '  dataSource: {name: snap, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}' |
    kubectl -n "$ns" apply -f - >/dev/null
  pvc_yaml clone 1Gi '  dataSource: {name: src, kind: PersistentVolumeClaim}' | kubectl -n "$ns" apply -f - >/dev/null
  local c
  for c in restored clone; do
    pod_yaml "read-$c" "${WORKERS[1]}" "$c" 'cat /data/f' | kubectl -n "$ns" apply -f - >/dev/null
    wait_pod_done "$ns" "read-$c" 240 || return 1
    [[ $(kubectl -n "$ns" logs "read-$c") == snapshot-data ]] ||
      fail "$c holds '$(kubectl -n "$ns" logs "read-$c")'" || return 1
  done
  kubectl delete namespace "$ns" --wait >/dev/null
}

# A mounted volume grows while its pod runs (controller then node expansion).
test_online_expansion_reaches_the_pod() {
  local ns
  ns=$(new_ns expand)
  pvc_yaml grow 1Gi | kubectl -n "$ns" apply -f - >/dev/null
  pod_yaml runner "${WORKERS[0]}" grow 'while :; do df -k /data | tail -1 | tr -s " " | cut -d" " -f2 > /data/size; sleep 1; done' |
    sed 's/restartPolicy: Never/restartPolicy: Always/' | kubectl -n "$ns" apply -f - >/dev/null
  kubectl -n "$ns" wait --for=condition=Ready pod/runner --timeout=240s >/dev/null || fail "pod not running" || return 1
  kubectl -n "$ns" patch pvc grow -p '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}' >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.capacity.storage}'=2Gi pvc/grow --timeout=180s >/dev/null ||
    fail "PVC capacity stays $(kubectl -n "$ns" get pvc grow -o jsonpath='{.status.capacity.storage}')" || return 1
  local kb deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    kb=$(kubectl -n "$ns" exec runner -- cat /data/size 2>/dev/null || echo 0)
    ((kb > 1500000)) && break
    sleep 2
  done
  ((kb > 1500000)) || fail "filesystem in the pod is $kb KiB after expansion to 2Gi" || return 1
  kubectl delete namespace "$ns" --wait >/dev/null
}

# A raw block volume: written through the device in one pod, read in another.
test_raw_block_volume() {
  local ns
  ns=$(new_ns block)
  pvc_yaml blk 1Gi '  volumeMode: Block' | kubectl -n "$ns" apply -f - >/dev/null
  block_pod() { # NAME NODE COMMAND
    pod_yaml "$1" "$2" blk "$3" |
      sed -e 's|volumeMounts: \[{name: v, mountPath: /data}\]|volumeDevices: [{name: v, devicePath: /dev/xvda}]|' |
      kubectl -n "$ns" apply -f - >/dev/null
    wait_pod_done "$ns" "$1" 240
  }
  block_pod w "${WORKERS[0]}" 'echo raw-block-data | dd of=/dev/xvda bs=512 count=1 conv=sync,fsync' || return 1
  kubectl -n "$ns" delete pod w --wait >/dev/null
  block_pod r "${WORKERS[1]}" 'head -n 1 /dev/xvda' || return 1
  [[ $(kubectl -n "$ns" logs r | tr -d '\0') == raw-block-data ]] ||
    fail "read back '$(kubectl -n "$ns" logs r | tr -d '\0')'" || return 1
  kubectl delete namespace "$ns" --wait >/dev/null
}

inline_pod_yaml() { # NAME ATTRIBUTES_JSON
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: c
      image: lbcsi.local/shell:dev
      imagePullPolicy: Never
      command: ["/bin/sh", "-c", "echo ok > /scratch/f && cat /scratch/f && df -k /scratch"]
      volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
    - name: scratch
      csi: {driver: csi.lightbitslabs.com, volumeAttributes: $2}
EOF
}

# A CSI inline ephemeral volume works; one whose pod picks its own cluster is refused, and
# the pod's events say why (without echoing the value).
test_inline_ephemeral_and_hostile_attributes() {
  local ns
  ns=$(new_ns inline)
  inline_pod_yaml good '{size: 1Gi}' | kubectl -n "$ns" apply -f - >/dev/null
  wait_pod_done "$ns" good 240 || return 1
  inline_pod_yaml hostile '{size: 1Gi, mgmt-endpoint: "192.0.2.1:443"}' | kubectl -n "$ns" apply -f - >/dev/null
  local events deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    events=$(kubectl -n "$ns" get events --field-selector involvedObject.name=hostile -o jsonpath='{range .items[*]}{.reason}: {.message}{"\n"}{end}')
    grep -q 'is not allowed for inline ephemeral volumes' <<<"$events" && break
    sleep 3
  done
  grep -q 'mgmt-endpoint.*is not allowed for inline ephemeral volumes' <<<"$events" ||
    fail "no readable refusal in the events: $events" || return 1
  grep -q '192.0.2.1' <<<"$events" && fail "the event echoes the pod's value: $events" && return 1
  [[ $(kubectl -n "$ns" get pod hostile -o jsonpath='{.status.phase}') == Pending ]] ||
    fail "hostile pod ran" || return 1
  kubectl delete namespace "$ns" --wait >/dev/null
}

# The agent and the helper killed with SIGKILL while a pod uses a volume: they come back,
# the mounted volume keeps working, and a new volume can still be staged on that node.
test_agent_and_helper_killed_while_in_use() {
  local ns node=${WORKERS[0]}
  ns=$(new_ns kill)
  pvc_yaml a 1Gi | kubectl -n "$ns" apply -f - >/dev/null
  pod_yaml user "$node" a 'i=0; while :; do echo $i > /data/f; sync; i=$((i+1)); sleep 1; done' |
    sed 's/restartPolicy: Never/restartPolicy: Always/' | kubectl -n "$ns" apply -f - >/dev/null
  kubectl -n "$ns" wait --for=condition=Ready pod/user --timeout=240s >/dev/null || fail "pod not running" || return 1
  local c
  for c in lbcsi-agent lbcsi-helper; do
    on "$node" sh -c "pkill -9 -x $c" || fail "no $c process on $node" || return 1
  done
  kubectl -n kube-system wait --for=condition=Ready pod -l app.kubernetes.io/name=lbcsi \
    --field-selector spec.nodeName="$node" --timeout=180s >/dev/null || fail "lbcsi pods on $node not back" || return 1
  local before after
  before=$(kubectl -n "$ns" exec user -- cat /data/f)
  sleep 3
  after=$(kubectl -n "$ns" exec user -- cat /data/f)
  ((after > before)) || fail "writes stopped: $before then $after" || return 1
  pvc_yaml b 1Gi | kubectl -n "$ns" apply -f - >/dev/null
  pod_yaml second "$node" b 'echo fine > /data/f && cat /data/f' | kubectl -n "$ns" apply -f - >/dev/null
  wait_pod_done "$ns" second 240 || return 1
  kubectl delete namespace "$ns" --wait >/dev/null
}

# lightos-sim holds no volume after the cases above deleted theirs (nothing leaked).
test_zz_no_volume_left_behind() {
  local deadline=$((SECONDS + 120)) n
  while ((SECONDS < deadline)); do
    n=$(kubectl get pv --no-headers 2>/dev/null | wc -l)
    ((n == 0)) && break
    sleep 3
  done
  ((n == 0)) || fail "PVs left: $(kubectl get pv)" || return 1
}

# ---------- runner ----------

run_start=$SECONDS
passed=0
failed=0
failed_names=()
cases=${LBCSI_K8S_TESTS:-$(declare -F | awk '$3 ~ /^test_/ {print $3}')}
for t in $cases; do
  log "RUN  $t"
  t0=$SECONDS
  if (set -e; "$t"); then
    passed=$((passed + 1))
    log "PASS $t ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$t")
    log "FAIL $t ($((SECONDS - t0)) s)"
  fi
done
log "cluster tests: $((SECONDS - run_start)) s"
((failed == 0)) || log "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
