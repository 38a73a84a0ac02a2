#!/usr/bin/env bash
# Print a job's log; with -f/--follow, keep streaming it until the job ends.
#
#   jobs/logs.sh [-f|--follow] JOB_ID
#   jobs/logs.sh --list            # the cluster's jobs (ids, stages, statuses)
source "$(dirname "$0")/common.sh"

case ${1:-} in -h | --help) help_text; exit 0 ;; "") help_text; exit 2 ;; esac
check_token
case $1 in
  --list) exec ray job list --address "$RAY_ADDRESS" ;;
  -f | --follow) [ $# -eq 2 ] || die "usage: jobs/logs.sh [-f] JOB_ID"; exec ray job logs --address "$RAY_ADDRESS" --follow "$2" ;;
  *) [ $# -eq 1 ] || die "usage: jobs/logs.sh [-f] JOB_ID"; exec ray job logs --address "$RAY_ADDRESS" "$1" ;;
esac
