#!/usr/bin/env bash
# ShellCheck every shell script in the repository (tracked or new, not ignored) and the CI entry.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "lint-shell: shellcheck is not installed (apt-get install -y shellcheck)" >&2
  exit 1
fi
mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh' | sort -u)
scripts+=(.ci/run)
echo "shellcheck: ${#scripts[@]} scripts"
shellcheck -x "${scripts[@]}"
