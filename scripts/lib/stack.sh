# shellcheck shell=bash
# The local stack shared by scripts/demo, scripts/stack and scripts/bench:
# lightos-sim + lbcsi-controller + lbcsi-helper (loop transport) + lbcsi-agent
# (as an unprivileged uid) as real processes on unix sockets under one directory.
#
# Layout of a stack directory ($dir):
#   .lbcsi-stack          marker: stack_stop only deletes directories holding it
#   env                   shell variables describing the running stack (stack_env)
#   run/<name>.pid        one per process; run/<name>.startup_us start-up to ready
#   logs/<name>.log       each process's stderr/stdout
#   etc/                  jwt (root only), agent-jwt + ca.crt + ephemeral.json (agent-readable), hostnqn
#   pki/                  throwaway CA and server certificate (lightos-sim serves grpcs)
#   sim/                  lightos-sim data directory (volumes are sparse files there)
#   controller/csi.sock   controller CSI socket
#   helper/helper.sock    helper socket (SO_PEERCRED: only the agent's uid)
#   kubelet/              kubelet root: helper --root and agent --kubelet-root
#     plugins/<driver>/csi.sock   agent CSI socket (directory owned by the agent's uid)
#   agent-state/ helper-state/
#
# Callers set: LBCSI_REPO (checkout), and may set LBCSI_BUILD_DIR, LBCSI_AGENT_UID/GID,
# LBCSI_NODE_ID, LBCSI_LOG_LEVEL.

LBCSI_DRIVER=csi.lightbitslabs.com
LBCSI_NODE_ID=${LBCSI_NODE_ID:-lbcsi-demo.node}
LBCSI_AGENT_UID=${LBCSI_AGENT_UID:-65534}
LBCSI_AGENT_GID=${LBCSI_AGENT_GID:-65534}
LBCSI_LOG_LEVEL=${LBCSI_LOG_LEVEL:-info}
STACK_COMPONENTS=(sim controller helper agent)  # start order; stop runs it backwards

# ---------- small utilities ----------

# Microseconds since the epoch without forking.
now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }

die() {
  echo "error: $*" >&2
  exit 1
}

# Prints the last lines of every component log of stack directory $1.
stack_log_tails() {
  local dir=$1 lines=${2:-15} f
  for f in "$dir"/logs/*.log; do
    [[ -s $f && $f != */gen-certs.log ]] || continue
    echo "---- last $lines lines of ${f##*/} ----" >&2
    tail -n "$lines" "$f" >&2
  done
}

# ---------- build ----------

# Resolves the binaries of build directory $1 into SIM_BIN CONTROLLER_BIN HELPER_BIN AGENT_BIN CSICTL.
stack_bins() {
  local build=$1
  SIM_BIN=$build/tests/lightos-sim/lightos-sim
  CONTROLLER_BIN=$build/controller/lbcsi-controller
  HELPER_BIN=$build/helper/lbcsi-helper
  AGENT_BIN=$build/agent/lbcsi-agent
  CSICTL=$build/tools/csictl/csictl
  local b
  for b in "$SIM_BIN" "$CONTROLLER_BIN" "$HELPER_BIN" "$AGENT_BIN" "$CSICTL"; do
    [[ -x $b ]] || die "$b is not built (build it, or point LBCSI_BUILD_DIR at a build that has it)"
  done
}

# Installs packages, configures build directory $1 (Release, tests on for lightos-sim) and builds
# the stack's binaries plus any extra targets given after it.
stack_build() {
  local build=$1
  shift
  "$LBCSI_REPO/scripts/install-deps"
  export CCACHE_BASEDIR=$LBCSI_REPO CCACHE_NOHASHDIR=1
  mkdir -p "$build"
  # LBCSI_WERROR=ON (scripts/test) makes warnings errors; a user's build never fails on one.
  cmake -S "$LBCSI_REPO" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLBCSI_TESTS=ON \
    -DLBCSI_WERROR="${LBCSI_WERROR:-OFF}" \
    >"$build/lbcsi-configure.log" 2>&1 || {
    tail -n 30 "$build/lbcsi-configure.log" >&2
    die "cmake configure failed (log: $build/lbcsi-configure.log)"
  }
  cmake --build "$build" -j "${LBCSI_JOBS:-$(nproc)}" --target lightos-sim lbcsi-controller \
    lbcsi-helper lbcsi-agent csictl "$@"
}

# ---------- processes ----------

# Starts "$@" in its own session with output to logs/$name.log; records run/$name.pid.
# The pid is the program's own (bash and setpriv exec into it).
_stack_spawn() {
  local dir=$1 name=$2
  shift 2
  rm -f "$dir/run/$name.pid"
  # shellcheck disable=SC2016  # expanded by the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/run/$name.pid" "$@" \
    </dev/null >>"$dir/logs/$name.log" 2>&1 &
  disown $!  # stack_stop reaps it; no job notices from this shell
  local i
  for ((i = 0; i < 500; i++)); do
    [[ -s $dir/run/$name.pid ]] && return 0
    sleep 0.002
  done
  die "$name did not start"
}

stack_pid() { cat "$1/run/$2.pid" 2>/dev/null || true; }

# True when run/$2.pid names a live process of this stack (its command line names $1).
stack_alive() {
  local dir=$1 pid
  pid=$(stack_pid "$dir" "$2")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

# Polls "$4..." every 5 ms until it succeeds, for at most $3 seconds; fails early when
# component $2 dies. Records the time since STACK_T0 (just before exec) in run/$2.startup_us.
_stack_wait_ready() {
  local dir=$1 name=$2 timeout_s=$3
  shift 3
  local deadline=$(($(now_us) + timeout_s * 1000000))
  while ! "$@" >/dev/null 2>&1; do
    if ! stack_alive "$dir" "$name"; then
      stack_log_tails "$dir" 20
      die "$name exited during start-up (log: $dir/logs/$name.log)"
    fi
    if (($(now_us) > deadline)); then
      stack_log_tails "$dir" 20
      die "$name not ready after ${timeout_s}s (log: $dir/logs/$name.log)"
    fi
    sleep 0.005
  done
  echo $(($(now_us) - STACK_T0)) >"$dir/run/$name.startup_us"
}

# Readiness probes.
_csi_probe_ready() {
  local out
  out=$("$CSICTL" -t 2 -e "$1" --json Probe 2>/dev/null) || return 1
  [[ $(jq -r '.ready' <<<"$out") != false ]]
}
_helper_ready() {
  [[ -S $1/helper/helper.sock ]] && grep -q 'lbcsi-helper ready' "$1/logs/helper.log"
}

# Start-up time of component $2 in milliseconds (one decimal), from run/$2.startup_us.
stack_startup_ms() {
  local us
  us=$(cat "$1/run/$2.startup_us" 2>/dev/null) || {
    echo "-"
    return
  }
  printf '%d.%d' $((us / 1000)) $((us % 1000 / 100))
}

# ---------- start ----------

# Starts the whole stack in directory $1 (created; must not hold a running stack). Needs root
# and stack_bins. Prints one line per component with its start-up time when $2 is "verbose".
stack_start() {
  local dir=$1 verbose=${2:-}
  [[ $(id -u) -eq 0 ]] || die "the stack needs root (the helper attaches loop devices and mounts)"
  if [[ -e $dir/.lbcsi-stack ]] && stack_any_alive "$dir"; then
    die "a stack is already running in $dir (stop it first)"
  fi
  [[ -e $dir/.lbcsi-stack ]] && stack_stop "$dir" quiet
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  touch "$dir/.lbcsi-stack"
  chmod 0755 "$dir"  # the agent's uid must reach its sockets, state and kubelet directories
  mkdir -p "$dir"/{run,logs,etc,sim,controller,helper,helper-state,kubelet}
  mkdir -p "$dir/agent-state" "$dir/kubelet/plugins"
  # The agent's state directory; its plugin socket directory (and ephemeral/ inside it for
  # inline volumes) is handed to it by the helper's PrepareSocketDir when the agent starts,
  # as in a deployment.
  chown "$LBCSI_AGENT_UID:$LBCSI_AGENT_GID" "$dir/agent-state"
  chmod 0700 "$dir/agent-state"
  chmod 0755 "$dir/kubelet" "$dir/kubelet/plugins"

  # Secrets: one random LightOS token; a copy the agent can read for ephemeral volumes.
  local jwt
  jwt=lbcsi-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077 && printf '%s' "$jwt" >"$dir/etc/jwt")
  install -m 0400 -o "$LBCSI_AGENT_UID" -g "$LBCSI_AGENT_GID" "$dir/etc/jwt" "$dir/etc/agent-jwt"
  echo "nqn.2019-09.com.lightbitslabs:host:$LBCSI_NODE_ID" >"$dir/etc/hostnqn"
  "$SIM_BIN" gen-certs --dir "$dir/pki" --ip 127.0.0.1 --dns localhost >>"$dir/logs/gen-certs.log" 2>&1 ||
    die "lightos-sim gen-certs failed (log: $dir/logs/gen-certs.log)"
  install -m 0444 "$dir/pki/ca.crt" "$dir/etc/ca.crt"

  # lightos-sim (grpcs, one management endpoint, HTTP control endpoint for fault injection).
  STACK_T0=$(now_us)
  _stack_spawn "$dir" sim "$SIM_BIN" --data-dir "$dir/sim" --listen 127.0.0.1:0 \
    --jwt-file "$dir/etc/jwt" --tls-cert "$dir/pki/server.crt" --tls-key "$dir/pki/server.key" \
    --control-listen 127.0.0.1:0 --ready-file "$dir/run/sim-ready.json" --log-level "$LBCSI_LOG_LEVEL"
  _stack_wait_ready "$dir" sim 30 test -s "$dir/run/sim-ready.json"
  local mgmt control
  mgmt=$(jq -r '.endpoints[0]' "$dir/run/sim-ready.json")
  control=$(jq -r '.control' "$dir/run/sim-ready.json")
  [[ -n $verbose ]] && _stack_started "$dir" sim lightos-sim "grpcs://$mgmt (TLS, JWT)"

  # Controller (list mode over the same endpoint, so ListVolumes works).
  local ctrl_ep="unix://$dir/controller/csi.sock"
  STACK_T0=$(now_us)
  _stack_spawn "$dir" controller "$CONTROLLER_BIN" --endpoint "$ctrl_ep" \
    --ca-bundle "$dir/etc/ca.crt" --jwt-file "$dir/etc/jwt" --cluster "$mgmt|scheme:grpcs" \
    --metrics-address 127.0.0.1:0 --log-level "$LBCSI_LOG_LEVEL"
  _stack_wait_ready "$dir" controller 30 _csi_probe_ready "$ctrl_ep"
  [[ -n $verbose ]] && _stack_started "$dir" controller lbcsi-controller "$ctrl_ep"

  # Helper: root, loop transport over the emulator's files, accepts only the agent's uid.
  local root_client=()
  ((LBCSI_AGENT_UID == 0)) && root_client=(--allow-root-client)
  STACK_T0=$(now_us)
  _stack_spawn "$dir" helper "$HELPER_BIN" --socket "$dir/helper/helper.sock" \
    --allowed-uid "$LBCSI_AGENT_UID" --allowed-gid "$LBCSI_AGENT_GID" "${root_client[@]}" \
    --root "$dir/kubelet" --state-dir "$dir/helper-state" --host-nqn-file "$dir/etc/hostnqn" \
    --transport loop --sim-data-dir "$dir/sim" --allow-foreign-netns \
    --plugin-socket-dir "$dir/kubelet/plugins/$LBCSI_DRIVER" --agent-uid "$LBCSI_AGENT_UID" \
    --log-level "$LBCSI_LOG_LEVEL"
  _stack_wait_ready "$dir" helper 30 _helper_ready "$dir"
  [[ -n $verbose ]] && _stack_started "$dir" helper lbcsi-helper "$dir/helper/helper.sock (root, loop transport, seccomp)"

  # Agent: unprivileged uid, no capabilities, no new privileges; inline volumes enabled.
  jq -n --arg ep "$mgmt" --arg ca "$dir/etc/ca.crt" --arg tok "$dir/etc/agent-jwt" \
    '{mgmt_endpoints: $ep, scheme: "grpcs", project: "default", ca_bundle_file: $ca,
      token_file: $tok, max_size: "4Gi", default_size: "1Gi", default_replica_count: 1,
      max_replica_count: 3, default_compression: false, default_fs_type: "ext4",
      insecure_skip_verify: false}' >"$dir/etc/ephemeral.json"
  chmod 0444 "$dir/etc/ephemeral.json"
  if ((LBCSI_AGENT_UID != 0)) && ! setpriv --reuid="$LBCSI_AGENT_UID" --regid="$LBCSI_AGENT_GID" \
    --clear-groups test -r "$dir/etc/ephemeral.json"; then
    die "uid $LBCSI_AGENT_UID cannot reach $dir (make its parent directories searchable: chmod o+x)"
  fi
  local node_ep="unix://$dir/kubelet/plugins/$LBCSI_DRIVER/csi.sock"
  local drop=()
  ((LBCSI_AGENT_UID != 0)) && drop=(setpriv --reuid="$LBCSI_AGENT_UID" --regid="$LBCSI_AGENT_GID"
    --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs --)
  STACK_T0=$(now_us)
  _stack_spawn "$dir" agent "${drop[@]}" "$AGENT_BIN" --endpoint "$node_ep" \
    --node-id "$LBCSI_NODE_ID" --helper-socket "$dir/helper/helper.sock" \
    --kubelet-root "$dir/kubelet" --state-dir "$dir/agent-state" \
    --ephemeral-config "$dir/etc/ephemeral.json" --log-level "$LBCSI_LOG_LEVEL"
  _stack_wait_ready "$dir" agent 60 _csi_probe_ready "$node_ep"
  [[ -n $verbose ]] && _stack_started "$dir" agent lbcsi-agent "$node_ep (uid $LBCSI_AGENT_UID, no capabilities)"

  _stack_write_env "$dir" "$mgmt" "$control" "$jwt" "$ctrl_ep" "$node_ep"
}

_stack_started() {  # dir name label detail
  printf '  %-17s ready in %7s ms  %s\n' "$3" "$(stack_startup_ms "$1" "$2")" "$4"
}

# Writes $dir/env (sourceable) and the csi-sanity input files.
_stack_write_env() {
  local dir=$1 mgmt=$2 control=$3 jwt=$4 ctrl_ep=$5 node_ep=$6
  local params secrets
  params=$(jq -cn --arg ep "$mgmt" \
    '{"mgmt-endpoint": $ep, "replica-count": "1", "mgmt-scheme": "grpcs", "compression": "disabled"}')
  secrets=$(jq -cn --arg t "$jwt" '{jwt: $t}')
  mkdir -p "$dir/csi-sanity"
  {
    echo "mgmt-endpoint: \"$mgmt\""
    echo 'replica-count: "1"'
    echo 'mgmt-scheme: "grpcs"'
  } >"$dir/csi-sanity/parameters.yaml"
  (
    umask 077
    local k
    for k in CreateVolumeSecret DeleteVolumeSecret ControllerPublishVolumeSecret \
      ControllerUnpublishVolumeSecret ControllerValidateVolumeCapabilitiesSecret \
      NodeStageVolumeSecret NodePublishVolumeSecret CreateSnapshotSecret DeleteSnapshotSecret \
      ControllerExpandVolumeSecret NodeExpandVolumeSecret ListSnapshotsSecret; do
      printf '%s:\n  jwt: "%s"\n' "$k" "$jwt"
    done >"$dir/csi-sanity/secrets.yaml"
  )
  # csi-sanity makes its own staging/target paths; the driver accepts only kubelet's CSI layouts
  # (kubeletpaths/), so these commands make layout-shaped ones and print them. csi-sanity
  # publishes at "<printed target dir>/target", which only kubelet's raw-block publish layout
  # (volumeDevices/publish/<pv>/<pod uid>) can hold, so csi-sanity runs with block volumes
  # (--csi.testvolumeaccesstype=block); the project's own conformance suite covers filesystems.
  # (Kubernetes names are lower case: a hex suffix, not mktemp's mixed-case one.)
  local suffix='n=sanity-$(od -An -N6 -tx1 /dev/urandom | tr -d " \\n")'
  local devices=$dir/kubelet/plugins/kubernetes.io/csi/volumeDevices
  printf '#!/bin/sh\n%s\nd=%s/staging/$n\n%s\n' \
    "$suffix" "$devices" 'mkdir -p "$d" && echo "$d"' >"$dir/csi-sanity/make-staging-path"
  printf '#!/bin/sh\n%s\nd=%s/publish/$n\n%s\n' \
    "$suffix" "$devices" 'mkdir -p "$d" && echo "$d"' >"$dir/csi-sanity/make-target-path"
  # csi-sanity's check that unpublish removed the target asks this what a path is.
  cat >"$dir/csi-sanity/check-path" <<'EOS'
#!/bin/sh
if [ -L "$1" ]; then echo other; elif [ -f "$1" ]; then echo file
elif [ -d "$1" ]; then echo directory; elif [ -e "$1" ]; then echo other; else echo not_found; fi
EOS
  chmod 0755 "$dir/csi-sanity/make-staging-path" "$dir/csi-sanity/make-target-path" \
    "$dir/csi-sanity/check-path"
  mkdir -p "$devices/staging" "$devices/publish"
  (
    umask 077
    cat >"$dir/env" <<EOF
LBCSI_STACK_DIR='$dir'
LBCSI_CONTROLLER_ENDPOINT='$ctrl_ep'
LBCSI_NODE_ENDPOINT='$node_ep'
LBCSI_NODE_ID='$LBCSI_NODE_ID'
LBCSI_DRIVER='$LBCSI_DRIVER'
LBCSI_KUBELET_ROOT='$dir/kubelet'
LBCSI_STAGING_BASE='$dir/kubelet/plugins/kubernetes.io/csi/pv'
LBCSI_TARGET_BASE='$dir/kubelet/pods'
LBCSI_SC_PARAMETERS='$params'
LBCSI_SECRETS='$secrets'
LBCSI_JWT_FILE='$dir/etc/jwt'
LBCSI_CA_BUNDLE='$dir/etc/ca.crt'
LBCSI_MGMT_ENDPOINT='$mgmt'
LBCSI_SIM_CONTROL='http://$control'
LBCSI_HELPER_SOCKET='$dir/helper/helper.sock'
LBCSI_AGENT_UID='$LBCSI_AGENT_UID'
CSICTL='$CSICTL'
EOF
  )
}

# ---------- inspection ----------

stack_any_alive() {
  local name
  for name in "${STACK_COMPONENTS[@]}"; do
    stack_alive "$1" "$name" && return 0
  done
  return 1
}

# Mount points at or under $1 (deepest first).
stack_mounts() {
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print length($5), $5 }' /proc/self/mountinfo |
    sort -rn | cut -d' ' -f2-
}

# Loop devices whose backing file lies under $1.
stack_loops() {
  local b file
  for b in /sys/block/loop*/loop/backing_file; do
    [[ -r $b ]] || continue
    file=$(cat "$b" 2>/dev/null) || continue
    [[ $file == "$1"/* ]] && { b=${b#/sys/block/}; echo "/dev/${b%%/*}"; }
  done
  return 0
}

# Human-readable state of the stack in $1; succeeds only when every process runs and both
# CSI sockets answer Probe with ready.
stack_status() {
  local dir=$1 name pid rss ok=0
  [[ -e $dir/.lbcsi-stack ]] || {
    echo "no stack in $dir"
    return 1
  }
  for name in "${STACK_COMPONENTS[@]}"; do
    pid=$(stack_pid "$dir" "$name")
    if stack_alive "$dir" "$name"; then
      rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
      printf '  %-11s running  pid %-7s RSS %6d KiB\n' "$name" "$pid" "$rss"
    else
      printf '  %-11s STOPPED\n' "$name"
      ok=1
    fi
  done
  local ep
  CSICTL=${CSICTL:-$(_stack_env_get "$dir" CSICTL)}
  for ep in "$(_stack_env_get "$dir" LBCSI_CONTROLLER_ENDPOINT)" \
    "$(_stack_env_get "$dir" LBCSI_NODE_ENDPOINT)"; do
    [[ -n $ep ]] || {
      ok=1
      continue
    }
    if _csi_probe_ready "$ep"; then
      echo "  Probe ready: $ep"
    else
      echo "  Probe NOT ready: $ep"
      ok=1
    fi
  done
  printf '  mounts under the stack: %d, loop devices: %d\n' "$(stack_mounts "$dir" | wc -l)" \
    "$(stack_loops "$dir" | wc -l)"
  return "$ok"
}

# Value of variable $2 in $1/env (empty when absent).
_stack_env_get() { sed -n "s/^$2='\\(.*\\)'\$/\\1/p" "$1/env" 2>/dev/null || true; }

# ---------- stop ----------

# Stops every process of stack $1, unmounts what is mounted under it, detaches its loop devices
# and removes the directory. Safe to call twice and on a half-started stack.
stack_stop() {
  local dir=$1 quiet=${2:-} i name pid
  [[ -e $dir/.lbcsi-stack ]] || return 0
  for ((i = ${#STACK_COMPONENTS[@]} - 1; i >= 0; i--)); do
    name=${STACK_COMPONENTS[i]}
    stack_alive "$dir" "$name" || continue
    pid=$(stack_pid "$dir" "$name")
    kill -TERM "$pid" 2>/dev/null || true
    local n=0
    while [[ -e /proc/$pid ]] && ((n++ < 200)); do sleep 0.05; done  # 10 s grace
    if [[ -e /proc/$pid ]]; then
      [[ -n $quiet ]] || echo "  $name did not stop on SIGTERM; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      n=0
      while [[ -e /proc/$pid ]] && ((n++ < 100)); do sleep 0.05; done
    fi
  done
  local mp dev
  for _ in 1 2 3; do
    while read -r mp; do
      [[ -n $mp ]] || continue
      umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    done < <(stack_mounts "$dir")
    for dev in $(stack_loops "$dir"); do losetup -d "$dev" 2>/dev/null || true; done
    [[ -z $(stack_mounts "$dir") && -z $(stack_loops "$dir") ]] && break
    sleep 0.2
  done
  if [[ -n $(stack_mounts "$dir") ]]; then
    echo "warning: mounts remain under $dir; not deleting it:" >&2
    stack_mounts "$dir" >&2
    return 1
  fi
  rm -rf --one-file-system "$dir"
}
