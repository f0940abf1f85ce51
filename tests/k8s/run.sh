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
      command: ["/bin/sh", "-c", "$4"]
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
