#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2154 # sourced by run.sh, which defines root and reads these
# Target "sandbox" of run.sh: skiff's own multi-node sandbox (sandbox/README.md) on network
# namespaces of this machine, brought up and down here; its kubelet stand-in runs the agnhost
# workloads with the sandbox's agnhost stand-in, so the same manifests apply. Needs root, ip, curl,
# dig (the test pods' commands run with this machine's tools) and kubectl.
# Environment: SANDBOX_NAME (skiffe), SANDBOX_SUBNET (172.31.225.0/24), SANDBOX_NODES (3),
# SKIFF_SANDBOX_DIR (its state, default /tmp/<name>-e2e).
# Sourced by run.sh, not executed.

readonly SANDBOX_NAME=${SANDBOX_NAME:-skiffe}
readonly SANDBOX_SUBNET=${SANDBOX_SUBNET:-172.31.225.0/24}
export SKIFF_SANDBOX_DIR=${SKIFF_SANDBOX_DIR:-/tmp/$SANDBOX_NAME-e2e}
# The sandbox's nodes route only to namespaces it made ("the internet" is one echo server).
TARGET_HAS_INTERNET=0

# The checkout's sources, so a stale dist/ never runs; dist/ only where tsx is not installed.
skiff() {
  if [ -x "$root/node_modules/.bin/tsx" ]; then
    "$root/node_modules/.bin/tsx" "$root/bin/skiff.ts" "$@"
  else
    node "$root/dist/bin/skiff.js" "$@"
  fi
}

target_prereqs() {
  [ "$(id -u)" = 0 ] || prereq_missing 'the sandbox creates network namespaces: run as root'
  local t
  for t in ip kubectl curl dig node; do
    command -v "$t" >/dev/null 2>&1 || prereq_missing "$t is not installed"
  done
  [ -x "$root/node_modules/.bin/tsx" ] || [ -f "$root/dist/bin/skiff.js" ] || prereq_missing "run npm ci in $root first"
}

target_up() {
  if [ -f "$SKIFF_SANDBOX_DIR/supervisor.pid" ] && [ "${REUSE:-0}" != 1 ]; then
    echo "skiff e2e: sandbox $SANDBOX_NAME is already up ($SKIFF_SANDBOX_DIR); take it down (skiff sandbox down --name $SANDBOX_NAME) or set REUSE=1" >&2
    exit "$EXIT_SETUP"
  fi
  [ "${REUSE:-0}" = 1 ] || owned=1
  log "bringing up sandbox $SANDBOX_NAME (${SANDBOX_NODES:-3} nodes on $SANDBOX_SUBNET)"
  skiff sandbox up --name "$SANDBOX_NAME" --subnet "$SANDBOX_SUBNET" --nodes "${SANDBOX_NODES:-3}" --wait
  created=1
  cp "$SKIFF_SANDBOX_DIR/kubeconfig" "$KUBECONFIG"
  kubectl wait --for=condition=Ready nodes --all --timeout=2m
}

target_down() {
  if [ "${KEEP:-0}" = 1 ]; then
    log "KEEP=1: sandbox $SANDBOX_NAME left running; export KUBECONFIG=$KUBECONFIG"
  else
    log "taking sandbox $SANDBOX_NAME down"
    skiff sandbox down --name "$SANDBOX_NAME" >/dev/null 2>&1 || true
  fi
}

target_diagnostics() {
  cp "$SKIFF_SANDBOX_DIR/supervisor.log" "$ARTIFACTS/supervisor.log" 2>/dev/null || true
  local d
  for d in "$SKIFF_SANDBOX_DIR"/node-*; do
    [ -d "$d" ] || continue
    cp "$d/agent.log" "$ARTIFACTS/$(basename "$d").agent.log" 2>/dev/null || true
  done
}

target_extra_checks() {
  skip 'conformance [sig-network]' 'the sandbox API server is not a kube-apiserver'
}
