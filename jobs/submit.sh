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
#   AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_REGION AWS_DEFAULT_REGION
#                             passed on to the job and all its trials when set (MinIO and other
#                             S3-compatible stores); on AWS the nodes' instance profile does the rest
#   SERTUNE_FORWARD_AWS_CREDENTIALS=1  pass AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN on too (they are
#                             then visible in the job's runtime environment to token holders)
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

# Runtime environment (jobs/runtime_env.py): unbuffered output, the S3 endpoint and region of
# this shell, optionally this checkout and AWS keys, then any extras.
runtime_env=$("$PYTHON" "$JOBS_DIR/runtime_env.py") || exit 2

ray job submit --address "$RAY_ADDRESS" --submission-id "$job_id" --no-wait \
  --runtime-env-json "$runtime_env" --metadata-json "{\"sertune_stage\": \"$stage\"}" \
  -- sertune "$stage" "$@" >&2
echo "$job_id"

if [ "${SERTUNE_NO_WAIT:-0}" = 1 ]; then exit 0; fi
exec "$JOBS_DIR/wait.sh" "$job_id"
