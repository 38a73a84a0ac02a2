#!/usr/bin/env bash
# The whole study on a running cluster: prepare -> tune -> sweep -> report, each one a Ray job
# submitted only after the previous one SUCCEEDED; then the report is fetched and printed.
#
#   SERTUNE_CLUSTER_CONFIG=cluster/config.yaml jobs/pipeline.sh
#
# Environment (RAY_ADDRESS and the token: jobs/common.sh; per-job options: jobs/submit.sh):
#   SERTUNE_DATA SERTUNE_STORE SERTUNE_EXPERIMENT_DIR
#                   the corpus, feature store and experiment directory as the cluster sees
#                   them (default: metadata.sertune of $SERTUNE_CLUSTER_CONFIG)
#   SERTUNE_STAGES  the stages to run, in order (default: "prepare tune sweep report")
#   SERTUNE_PREPARE_ARGS SERTUNE_TUNE_ARGS SERTUNE_SWEEP_ARGS SERTUNE_REPORT_ARGS
#                   extra options per stage, split on spaces, e.g.
#                   SERTUNE_TUNE_ARGS="--num-samples 64 --gpus-per-trial 1 --cpus-per-trial 4"
#   SERTUNE_REPORT_DEST  where the report is downloaded (default ./sertune-report)
source "$(dirname "$0")/common.sh"

case ${1:-} in -h | --help) help_text; exit 0 ;; esac
[ $# -eq 0 ] || die "jobs/pipeline.sh takes no arguments (see --help for its environment)"
check_token

data=$(sertune_setting SERTUNE_DATA data)
store=$(sertune_setting SERTUNE_STORE store)
exp=$(sertune_setting SERTUNE_EXPERIMENT_DIR experiment_dir)
read -r -a stages <<< "${SERTUNE_STAGES:-prepare tune sweep report}"

for stage in "${stages[@]}"; do
  var=SERTUNE_$(echo "$stage" | tr '[:lower:]' '[:upper:]')_ARGS
  read -r -a extra <<< "${!var:-}"
  case $stage in
    prepare) args=(--data "$data" --store "$store"); [ -n "$data" ] || die "set SERTUNE_DATA" ;;
    tune | sweep) args=(--store "$store" --experiment-dir "$exp") ;;
    report) args=(--experiment-dir "$exp") ;;
    *) die "unknown stage '$stage' in SERTUNE_STAGES" ;;
  esac
  [ -n "$store" ] || [ "$stage" = report ] || die "set SERTUNE_STORE (or SERTUNE_CLUSTER_CONFIG)"
  [ -n "$exp" ] || [ "$stage" = prepare ] || die "set SERTUNE_EXPERIMENT_DIR (or SERTUNE_CLUSTER_CONFIG)"
  echo "=== sertune $stage" >&2
  "$JOBS_DIR/submit.sh" "$stage" "${args[@]}" ${extra[@]+"${extra[@]}"} > /dev/null \
    || { echo "sertune $stage failed; later stages were not submitted" >&2; exit 1; }
done

case " ${stages[*]} " in
  *" report "*) "$JOBS_DIR/fetch_report.sh" "$exp" ;;
esac
