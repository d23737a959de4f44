#!/usr/bin/env bash
# End-to-end test of skiff, driven only through kubectl, on one of two targets:
#   --target sandbox  skiff's own multi-node sandbox on this machine (root; the default)
#   --target kind     a kind cluster with no default CNI, no kube-proxy and no CoreDNS (docker)
# Only bringing the cluster up (and the image into it) differs per target (targets/*.sh); the same
# workloads (workloads.yaml, the upstream agnhost image) and the same checks run on both: node
# annotations, pod to pod across nodes, ClusterIP (to pods and to the API server), NodePort and
# hostPort from outside the cluster, externalTrafficPolicy Local source IPs and cluster DNS.
#
# Environment:
#   KEEP=1          leave the cluster running afterwards (KUBECONFIG path is printed)
#   REUSE=1         use an existing cluster/sandbox of the target's name instead of failing
#   ARTIFACTS       where logs go on failure (default: a new directory under /tmp)
#   and each target's own (see targets/*.sh).
# Exit status: 0 all checks passed, 1 a check failed, 3 setup failed (cluster, image, rollout),
# 77 a prerequisite is missing (nothing was created), 2 bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_SETUP=3 EXIT_PREREQ=77

target=sandbox
while [ $# -gt 0 ]; do
  case $1 in
    --target) target=${2:-}; shift 2 || { echo "skiff e2e: --target needs a value" >&2; exit "$EXIT_USAGE"; } ;;
    --target=*) target=${1#--target=}; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "skiff e2e: unknown argument '$1' (usage: run.sh [--target sandbox|kind])" >&2; exit "$EXIT_USAGE" ;;
  esac
done
case $target in
  sandbox | kind) ;;
  *) echo "skiff e2e: unknown target '$target' (sandbox or kind)" >&2; exit "$EXIT_USAGE" ;;
esac

prereq_missing() {
  printf 'skiff e2e (%s): %s\n' "$target" "$1" >&2
  printf 'skiff e2e (%s): nothing was run (exit %d = prerequisite missing)\n' "$target" "$EXIT_PREREQ" >&2
  exit "$EXIT_PREREQ"
}

# shellcheck source-path=SCRIPTDIR source=targets/sandbox.sh
. "$here/targets/$target.sh"
target_prereqs

ARTIFACTS=${ARTIFACTS:-$(mktemp -d "/tmp/skiff-e2e-$target.XXXXXX")}
mkdir -p "$ARTIFACTS"
export KUBECONFIG="$ARTIFACTS/kubeconfig"
created=0 # 1 once a cluster exists that diagnostics can be collected from
owned=0   # 1 when this run created the cluster and so removes it
stage=setup

collect_diagnostics() {
  log "collecting diagnostics in $ARTIFACTS"
  {
    kubectl get nodes -o wide
    kubectl get pods -A -o wide
    kubectl get svc,endpointslices -A
    kubectl get events -A
  } >"$ARTIFACTS/cluster.txt" 2>&1 || true
  target_diagnostics
}

finish() {
  local rc=$?
  trap - EXIT
  if [ "$stage" = setup ] && [ "$rc" -ne 0 ]; then
    log "setup failed"
    rc=$EXIT_SETUP
  fi
  if [ "$rc" -ne 0 ] && [ "$created" = 1 ]; then collect_diagnostics; fi
  if [ "$owned" = 1 ]; then target_down; fi
  exit "$rc"
}
trap finish EXIT

# --- setup ---------------------------------------------------------------------------------------
target_up

log "deploying test workloads"
mapfile -t workers < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
if [ "${#workers[@]}" -lt 2 ]; then
  echo "skiff e2e: expected two workers, found ${#workers[@]}" >&2
  exit "$EXIT_SETUP"
fi
local_node=${workers[0]}
hostport_node=${workers[1]}
kubectl label node "$local_node" skiff-e2e/role=local --overwrite
kubectl label node "$hostport_node" skiff-e2e/role=hostport --overwrite
kubectl apply -f "$here/workloads.yaml"
kubectl -n "$NS" rollout status daemonset/echo --timeout=5m
kubectl -n "$NS" rollout status deployment/echo-local --timeout=5m
kubectl -n "$NS" wait --for=condition=Ready pod/hostport --timeout=5m

# --- facts the checks compare against ------------------------------------------------------------
echo_pods=$(kubectl -n "$NS" get pods -l app=echo -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}')
echo_names=$(awk '{print $1}' <<<"$echo_pods" | sort)
echo_ips=$(awk '{print $2}' <<<"$echo_pods" | sort)
client=$(head -n1 <<<"$echo_pods" | awk '{print $1}')
cluster_ip=$(kubectl -n "$NS" get svc echo -o jsonpath='{.spec.clusterIP}')
kubernetes_ip=$(kubectl get svc kubernetes -n default -o jsonpath='{.spec.clusterIP}')
dns_ip=$(kubectl -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}')
local_pod=$(kubectl -n "$NS" get pods -l app=echo-local -o jsonpath='{.items[0].metadata.name}')
mapfile -t nodes < <(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
stage=checks

# --- checks --------------------------------------------------------------------------------------
check_node_annotations() {
  local n mac rc=0
  for n in "${nodes[@]}"; do
    mac=$(kubectl get node "$n" -o jsonpath='{.metadata.annotations.skiff\.io/vtep-mac}')
    if [ -z "$mac" ]; then
      note "$n has no skiff.io/vtep-mac annotation"
      rc=1
    fi
  done
  return "$rc"
}

check_pod_to_pod() {
  local sname sip snode dname dip dnode rc=0 pairs=0
  while read -r sname sip snode; do
    while read -r dname dip dnode; do
      [ "$snode" != "$dnode" ] || continue
      pairs=$((pairs + 1))
      if ! retry 10 1 pod_get "$sname" "http://$dip:8080/hostname" "$dname"; then
        note "$sname ($snode, $sip) -> $dname ($dnode, $dip) failed"
        rc=1
      fi
    done <<<"$echo_pods"
  done <<<"$echo_pods"
  note "$pairs cross-node pairs"
  [ "$pairs" -gt 0 ] && return "$rc"
}

# Every echo pod reaches the Service, and the answers come from more than one backend.
check_cluster_ip() {
  local sname rest got seen="" i rc=0
  while read -r sname rest; do
    got=$(retry 10 1 in_pod "$sname" curl -fsS --max-time 3 "http://$cluster_ip/hostname" 2>/dev/null) || {
      note "$sname -> $cluster_ip failed"
      rc=1
      continue
    }
    grep -qx "$got" <<<"$echo_names" || { note "$sname got unexpected answer '$got'"; rc=1; }
  done <<<"$echo_pods"
  for i in $(seq 1 30); do
    got=$(in_pod "$client" curl -fsS --max-time 3 "http://$cluster_ip/hostname" 2>/dev/null) || continue
    seen+="$got"$'\n'
  done
  i=$(sed '/^$/d' <<<"$seen" | sort -u | wc -l)
  note "30 requests from $client reached $i distinct backends"
  [ "$i" -ge 2 ] || rc=1
  return "$rc"
}

# A pod reaches the API server through the kubernetes Service (a host-network endpoint).
check_cluster_ip_apiserver() {
  local got
  got=$(retry 10 1 in_pod "$client" curl -ksS --max-time 3 "https://$kubernetes_ip/healthz" 2>/dev/null) || return 1
  note "https://$kubernetes_ip/healthz -> $got"
  [ "$got" = ok ]
}

check_nodeport_from_host() {
  local n ip got rc=0
  for n in "${nodes[@]}"; do
    ip=$(node_ip "$n")
    got=$(retry 10 1 host_get "http://$ip:30080/hostname") || { note "$n ($ip):30080 failed"; rc=1; continue; }
    grep -qx "$got" <<<"$echo_names" || { note "$n ($ip):30080 answered '$got'"; rc=1; }
  done
  return "$rc"
}

check_hostport_from_host() {
  local ip got
  ip=$(node_ip "$hostport_node")
  got=$(retry 10 1 host_get "http://$ip:18080/hostname") || { note "$hostport_node ($ip):18080 failed"; return 1; }
  note "$ip:18080 -> $got"
  [ "$got" = hostport ]
}

# externalTrafficPolicy Local: the node with the endpoint sees the docker host's own address; the
# node without one does not forward the connection.
check_local_source_ip() {
  local ip other want got rc=0
  ip=$(node_ip "$local_node")
  other=$(node_ip "$hostport_node")
  want=$(ip -4 route get "$ip" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  got=$(retry 10 1 host_get "http://$ip:30081/clientip") || { note "$ip:30081 failed"; return 1; }
  note "$local_pod saw client ${got}, docker host address is $want"
  [ "${got%:*}" = "$want" ] || rc=1
  if host_get "http://$other:30081/clientip" >/dev/null; then
    note "$hostport_node ($other) answered although it has no local endpoint"
    rc=1
  fi
  return "$rc"
}

check_dns_service() {
  local conf rc=0
  conf=$(in_pod "$client" cat /etc/resolv.conf)
  grep -q "^nameserver $dns_ip\$" <<<"$conf" || { note "resolv.conf has no nameserver $dns_ip"; rc=1; }
  retry 10 1 dig_is "$client" "echo.$NS.svc.cluster.local" A "$cluster_ip" || rc=1
  retry 3 1 dig_is "$client" echo A "$cluster_ip" +search || rc=1
  retry 3 1 dig_is "$client" kubernetes.default.svc.cluster.local A "$kubernetes_ip" || rc=1
  return "$rc"
}

check_dns_headless() {
  retry 10 1 dig_is "$client" "echo-headless.$NS.svc.cluster.local" A "$echo_ips"
}

check_dns_external_name() {
  retry 10 1 dig_is "$client" "echo-external.$NS.svc.cluster.local" CNAME www.example.org.
}

check_dns_outside() {
  retry 5 2 dig_is "$client" registry.k8s.io A '^([0-9]+[.]){3}[0-9]+$' +regex
}

check node-annotations check_node_annotations
check pod-to-pod-across-nodes check_pod_to_pod
check cluster-ip check_cluster_ip
check cluster-ip-to-apiserver check_cluster_ip_apiserver
check nodeport-from-outside check_nodeport_from_host
check hostport-from-outside check_hostport_from_host
check external-traffic-policy-local-source-ip check_local_source_ip
check dns-service-names check_dns_service
check dns-headless check_dns_headless
check dns-externalname check_dns_external_name
if [ "$TARGET_HAS_INTERNET" = 1 ]; then
  check dns-outside-name check_dns_outside
else
  skip dns-outside-name "the $target target has no route to the internet"
fi
target_extra_checks

stage=finished
summary
if [ "${#FAILED[@]}" -gt 0 ]; then exit "$EXIT_FAILED"; fi
