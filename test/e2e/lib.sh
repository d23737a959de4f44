#!/usr/bin/env bash
# Helpers for run.sh: logging, retries, result bookkeeping and commands inside the test pods.
# Sourced, not executed.

NS=skiff-e2e
PASSED=()
FAILED=()
SKIPPED=()

log() { printf '\n== %s\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }

# retry TRIES DELAY CMD...: runs CMD until it succeeds; Service rules and DNS records converge a
# moment after the API objects change, so every probe gets a few attempts.
retry() {
  local tries=$1 delay=$2 i
  shift 2
  for ((i = 1; i <= tries; i++)); do
    if "$@"; then return 0; fi
    if ((i < tries)); then sleep "$delay"; fi
  done
  return 1
}

# check NAME FUNCTION: runs one check and records its outcome; a failing check does not stop the run.
check() {
  local name=$1
  shift
  log "check: $name"
  if "$@"; then
    PASSED+=("$name")
    note "PASS $name"
  else
    FAILED+=("$name")
    note "FAIL $name"
  fi
}

skip() {
  SKIPPED+=("$1: $2")
  note "SKIP $1 ($2)"
}

summary() {
  local t
  printf '\n==================== skiff e2e summary ====================\n'
  for t in "${PASSED[@]}"; do printf '  PASS  %s\n' "$t"; done
  for t in "${SKIPPED[@]}"; do printf '  SKIP  %s\n' "$t"; done
  for t in "${FAILED[@]}"; do printf '  FAIL  %s\n' "$t"; done
  printf '  %d passed, %d failed, %d skipped\n' "${#PASSED[@]}" "${#FAILED[@]}" "${#SKIPPED[@]}"
}

# in_pod POD CMD...: the test pods have one container each; stdin is closed so a loop reading a
# here-string around this call keeps its input.
in_pod() {
  local pod=$1
  shift
  kubectl -n "$NS" exec "$pod" -- "$@" </dev/null
}

# pod_get POD URL WANT: the body of an HTTP GET made from inside POD equals WANT.
pod_get() {
  local got
  got=$(in_pod "$1" curl -fsS --max-time 3 "$2" 2>/dev/null) || return 1
  [ "$got" = "$3" ]
}

# host_get URL: an HTTP GET from this machine (the docker host, or the sandbox host), outside the cluster.
host_get() {
  curl -fsS --max-time 3 "$1" 2>/dev/null
}

# dig_is POD NAME TYPE WANT [+search|+regex]: the cluster resolver's sorted short answer, as POD
# sees it, equals WANT (newline-separated records), or with +regex every line matches WANT.
# The answer is compared here, not by the caller, so that retry repeats an empty or wrong answer.
dig_is() {
  local pod=$1 name=$2 type=$3 want=$4 mode=${5:-} got
  local args=(+short +time=2 +tries=2)
  if [ "$mode" = +search ]; then args+=(+search); fi
  got=$(in_pod "$pod" dig "${args[@]}" "$name" "$type" 2>/dev/null | sort) || true
  note "$name $type -> $(tr '\n' ' ' <<<"${got:-<nothing>}")"
  if [ "$mode" = +regex ]; then
    [ -n "$got" ] && ! grep -Evq "$want" <<<"$got"
  else
    [ "$got" = "$want" ]
  fi
}

# node_ip NODE: the node's InternalIP.
node_ip() {
  kubectl get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'
}
