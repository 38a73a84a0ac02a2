#!/usr/bin/env bash
# Follow a job's log until it ends; exit 0 if it SUCCEEDED, 1 otherwise.
#
#   jobs/wait.sh JOB_ID
#
# Interrupting this (Ctrl-C) leaves the job running: jobs/stop.sh JOB_ID stops it.
source "$(dirname "$0")/common.sh"

[ $# -eq 1 ] || die "usage: jobs/wait.sh JOB_ID"
check_token
ray job logs --address "$RAY_ADDRESS" --follow "$1" >&2 || true  # the status below decides
status=$(job_status "$1")
while [ "$status" = PENDING ] || [ "$status" = RUNNING ]; do  # log stream ended early
  sleep 2
  status=$(job_status "$1")
done
echo "job $1: $status" >&2
[ "$status" = SUCCEEDED ]
