#!/usr/bin/env bash
# Download a finished report (table.md/.tex/.csv, stats.json, figures) and print its table.
#
#   jobs/fetch_report.sh [EXPERIMENT_DIR [DEST]]
#
# EXPERIMENT_DIR defaults to $SERTUNE_EXPERIMENT_DIR, else metadata.sertune.experiment_dir of
# $SERTUNE_CLUSTER_CONFIG; DEST to ./sertune-report. `sertune report` wrote EXPERIMENT_DIR/report:
#   an object store URI (s3://, gs://)  copied with pyarrow, using your local credentials
#   a path visible here (shared mount)  copied with cp
#   a path on the cluster only          copied from the head: ray rsync-down $SERTUNE_CLUSTER_CONFIG
source "$(dirname "$0")/common.sh"

case ${1:-} in -h | --help) help_text; exit 0 ;; esac
exp=${1:-$(sertune_setting SERTUNE_EXPERIMENT_DIR experiment_dir)}
[ -n "$exp" ] || die "no experiment dir: pass it, or set SERTUNE_EXPERIMENT_DIR or SERTUNE_CLUSTER_CONFIG"
dest=${2:-${SERTUNE_REPORT_DEST:-sertune-report}}
case $exp in
  *://*\?*) src="${exp%%\?*}"; src="${src%/}/report?${exp#*\?}" ;;  # URI options stay at the end
  *) src=${exp%/}/report ;;
esac
mkdir -p "$dest"

case $src in
  *://*)
    "$PYTHON" - "$src" "$dest" <<'PY'
import os, sys
import pyarrow.fs as pafs
pafs.copy_files(sys.argv[1], os.path.abspath(sys.argv[2]))
PY
    ;;
  *)
    if [ -d "$src" ]; then
      cp -R "$src/." "$dest/"
    elif [ -n "${SERTUNE_CLUSTER_CONFIG:-}" ]; then
      ray rsync-down "$SERTUNE_CLUSTER_CONFIG" "$src/" "$dest/"
    else
      die "$src is not visible here; set SERTUNE_CLUSTER_CONFIG=cluster/config.yaml to copy it from the head"
    fi
    ;;
esac

[ -f "$dest/table.md" ] || die "no table.md under $src (has the report stage run?)"
echo "report from $src in $dest/:" >&2
ls "$dest" >&2
cat "$dest/table.md"
