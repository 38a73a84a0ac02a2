#!/usr/bin/env bash
# Stop a job: its entrypoint and the trials it started end; what it already wrote stays.
#
#   jobs/stop.sh JOB_ID
source "$(dirname "$0")/common.sh"

case ${1:-} in -h | --help) help_text; exit 0 ;; "") help_text; exit 2 ;; esac
check_token
exec ray job stop --address "$RAY_ADDRESS" "$1"
