# Sourced by jobs/*.sh: the cluster's address, its token, and sertune's shared locations.
#
#   RAY_ADDRESS             Jobs API of the cluster (default http://127.0.0.1:8265: the SSH
#                           tunnel that `ray dashboard cluster/config.yaml` opens).
#   RAY_AUTH_TOKEN          the cluster's token, or
#   RAY_AUTH_TOKEN_PATH     a file holding it, else Ray's default file ~/.ray/auth_token --
#                           Ray's own lookup order. RAY_AUTH_MODE defaults to token here: the
#                           ray CLI sends the token only in token mode.
#   SERTUNE_CLUSTER_CONFIG  cluster YAML whose `metadata.sertune` supplies defaults for
#   SERTUNE_STORE, SERTUNE_EXPERIMENT_DIR, SERTUNE_DATA (which win when set).

set -euo pipefail

JOBS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${SERTUNE_PYTHON:-$(command -v python3 || command -v python)}

die() { echo "error: $*" >&2; exit 2; }
help_text() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; }

export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
case $RAY_ADDRESS in
  http://* | https://*) ;;
  *) die "RAY_ADDRESS=$RAY_ADDRESS: jobs are submitted to the Jobs API, e.g. http://127.0.0.1:8265" ;;
esac
# The Jobs CLI prefers RAY_API_SERVER_ADDRESS; keep it from pointing somewhere else.
unset RAY_API_SERVER_ADDRESS
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}

check_token() {
  [ "$RAY_AUTH_MODE" = token ] || return 0
  if [ -n "${RAY_AUTH_TOKEN:-}" ]; then return 0; fi
  local file=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
  [ -s "$file" ] || die "no Ray auth token: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to the file that was
  mounted on the cluster (e.g. export RAY_AUTH_TOKEN_PATH=~/.sertune/ray-auth-token); see docs/cluster.md"
}

# sertune_setting NAME KEY: $NAME if set, else metadata.sertune.KEY of $SERTUNE_CLUSTER_CONFIG.
sertune_setting() {
  local value=${!1:-}
  if [ -z "$value" ] && [ -n "${SERTUNE_CLUSTER_CONFIG:-}" ]; then
    value=$("$PYTHON" - "$SERTUNE_CLUSTER_CONFIG" "$2" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1])) or {}
print(((config.get("metadata") or {}).get("sertune") or {}).get(sys.argv[2], ""))
PY
)
  fi
  printf '%s' "$value"
}

# job_status ID: prints the job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED).
job_status() {
  "$PYTHON" - "$1" <<'PY'
import os, sys
from ray.job_submission import JobSubmissionClient
print(JobSubmissionClient(os.environ["RAY_ADDRESS"]).get_job_status(sys.argv[1]).value)
PY
}
