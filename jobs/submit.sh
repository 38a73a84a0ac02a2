#!/usr/bin/env bash
# Submit one sertune stage to a running Ray cluster as a Ray job, follow its log, and exit 0
# only if the job SUCCEEDED.
#
#   jobs/submit.sh STAGE [ARGS...]     STAGE: corpus | prepare | tune | sweep | report
#
# e.g. jobs/submit.sh sweep --store s3://b/sertune/features --experiment-dir s3://b/sertune/exp --seeds 20
#
# The entrypoint is `sertune STAGE ARGS...`, run on the head node; inside the job sertune
# connects to the cluster through the RAY_ADDRESS that Ray sets, so no --address is needed.
# Environment (besides RAY_ADDRESS and the token, see jobs/common.sh):
#   SERTUNE_WORKING_DIR       upload this checkout as the job's working_dir: every node imports
#                             sertune from it (development without reinstalling on the nodes)
#   SERTUNE_RUNTIME_ENV_JSON  extra runtime environment (JSON object) merged over the default
#   SERTUNE_JOB_ID            submission id (default sertune-STAGE-<UTC time>-<random>)
#   SERTUNE_NO_WAIT=1         submit, print the id, return (jobs/logs.sh ID follows it later)
source "$(dirname "$0")/common.sh"

usage() { help_text; exit 2; }
[ $# -ge 1 ] || usage
stage=$1
shift
case $stage in
  corpus | prepare | tune | sweep | report) ;;
  -h | --help) help_text; exit 0 ;;
  *) die "unknown stage '$stage' (corpus, prepare, tune, sweep, report)" ;;
esac
check_token

job_id=${SERTUNE_JOB_ID:-sertune-$stage-$(date -u +%Y%m%dT%H%M%SZ)-$RANDOM}

# Runtime environment: unbuffered output (live logs), optionally this checkout, then any extras.
runtime_env=$("$PYTHON" - <<'PY'
import json, os
env = {"env_vars": {"PYTHONUNBUFFERED": "1"}}
if os.environ.get("SERTUNE_WORKING_DIR"):
    env["working_dir"] = os.path.abspath(os.environ["SERTUNE_WORKING_DIR"])
    env["excludes"] = [".git", "**/__pycache__", "**/.pytest_cache", "*.egg-info", "sertune-experiment"]
extra = json.loads(os.environ.get("SERTUNE_RUNTIME_ENV_JSON") or "{}")
env["env_vars"].update(extra.pop("env_vars", {}))
env.update(extra)
print(json.dumps(env))
PY
)

ray job submit --address "$RAY_ADDRESS" --submission-id "$job_id" --no-wait \
  --runtime-env-json "$runtime_env" --metadata-json "{\"sertune_stage\": \"$stage\"}" \
  -- sertune "$stage" "$@" >&2
echo "$job_id"

if [ "${SERTUNE_NO_WAIT:-0}" = 1 ]; then exit 0; fi
exec "$JOBS_DIR/wait.sh" "$job_id"
