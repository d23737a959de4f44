#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2154 # sourced by run.sh, which defines root and reads these
# Target "kind" of run.sh: a kind cluster with no default CNI, no kube-proxy and no CoreDNS
# (manifests/kind.yaml), the skiff image built and loaded, skiff installed with the kind overlay.
# Needs a Linux docker host (the node IPs must be reachable from it), docker, kind, kubectl, curl
# and ip; the nodes pull registry.k8s.io/e2e-test-images/agnhost for the test workloads.
# Environment: REUSE=1, SKIP_BUILD=1, KIND_NODE_IMAGE, E2E_FOCUS / E2E_SKIP (see run.sh).
# Sourced by run.sh, not executed.

readonly CLUSTER=skiff-e2e # fixed: manifests/kind.yaml and the kind overlay name its control plane
readonly IMAGE=skiff:e2e
# Names outside the cluster resolve through the nodes' upstream resolver.
TARGET_HAS_INTERNET=1

target_prereqs() {
  command -v docker >/dev/null 2>&1 || prereq_missing 'docker is not installed'
  docker info >/dev/null 2>&1 || prereq_missing 'the docker engine is not reachable (docker info failed)'
  command -v kind >/dev/null 2>&1 || prereq_missing 'kind is not installed (https://kind.sigs.k8s.io)'
  command -v kubectl >/dev/null 2>&1 || prereq_missing 'kubectl is not installed'
  command -v curl >/dev/null 2>&1 || prereq_missing 'curl is not installed (probes from the docker host use it)'
  command -v ip >/dev/null 2>&1 || prereq_missing 'ip (iproute2) is not installed'
}

target_up() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    if [ "${REUSE:-0}" != 1 ]; then
      echo "skiff e2e: cluster $CLUSTER already exists; delete it (kind delete cluster --name $CLUSTER) or set REUSE=1" >&2
      exit "$EXIT_SETUP"
    fi
    log "reusing cluster $CLUSTER"
    kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
  else
    log "creating kind cluster $CLUSTER"
    local node_image=()
    if [ -n "${KIND_NODE_IMAGE:-}" ]; then node_image=(--image "$KIND_NODE_IMAGE"); fi
    owned=1
    # No --wait: nodes stay NotReady until skiff, their CNI, runs.
    kind create cluster --config "$root/manifests/kind.yaml" --kubeconfig "$KUBECONFIG" "${node_image[@]}"
  fi
  created=1

  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building $IMAGE"
    docker build -t "$IMAGE" "$root"
  fi
  log "loading $IMAGE into the nodes"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  log "removing CoreDNS (skiff serves cluster DNS)"
  kubectl -n kube-system delete deployment coredns --ignore-not-found --wait=true

  log "installing skiff"
  kubectl apply -k "$root/manifests/overlays/kind"
  kubectl -n kube-system rollout status daemonset/skiff --timeout=5m
  kubectl wait --for=condition=Ready nodes --all --timeout=5m
}

target_down() {
  if [ "${KEEP:-0}" = 1 ]; then
    log "KEEP=1: cluster $CLUSTER left running; export KUBECONFIG=$KUBECONFIG"
  else
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}

target_diagnostics() {
  kubectl -n kube-system logs -l app.kubernetes.io/name=skiff --all-containers --prefix --tail=-1 \
    >"$ARTIFACTS/skiff.log" 2>&1 || true
  local node
  for node in $(kind get nodes --name "$CLUSTER" 2>/dev/null); do
    docker exec "$node" sh -c 'nft list ruleset; ip -d link; ip route; ip neigh; bridge fdb show' \
      >"$ARTIFACTS/$node.net.txt" 2>&1 || true
  done
  kind export logs "$ARTIFACTS/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
}

# The upstream [sig-network] conformance tests, when an e2e.test binary is on PATH.
target_extra_checks() {
  if command -v e2e.test >/dev/null 2>&1; then
    check 'conformance [sig-network]' check_conformance
  else
    skip 'conformance [sig-network]' 'no e2e.test on PATH'
  fi
}

check_conformance() {
  local focus=${E2E_FOCUS:-'\[sig-network\].*\[Conformance\]'}
  local skip_re=${E2E_SKIP:-'\[Serial\]|\[Disruptive\]|\[Slow\]'}
  mkdir -p "$ARTIFACTS/conformance"
  e2e.test --kubeconfig="$KUBECONFIG" --provider=skeleton --report-dir="$ARTIFACTS/conformance" \
    --ginkgo.focus="$focus" --ginkgo.skip="$skip_re" --ginkgo.timeout=2h --ginkgo.no-color \
    >"$ARTIFACTS/conformance/e2e.log" 2>&1
  local rc=$?
  tail -n 20 "$ARTIFACTS/conformance/e2e.log" >&2
  return "$rc"
}
