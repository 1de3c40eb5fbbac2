#!/usr/bin/env bash
# Recognise every image under a folder into a JSON Lines file, for CI and batch jobs.
#
# Usage: scripts/predict_folder.sh DIR OUT.jsonl [MODEL]
#   DIR        folder searched recursively for images (.png .jpg .jpeg .bmp .tif .webp ...)
#   OUT.jsonl  results, one {"path", "text", "confidence", "error"} object per image, in
#              sorted path order; written atomically (complete, or not at all)
#   MODEL      ONNX model (default: the shipped weights/crnn.onnx)
#
# More options for `crnn-onnx predict` (e.g. "--batch-size 64 --device cuda"; space-separated,
# --format, --output and --quiet excepted) can be given in CRNN_PREDICT_ARGS.
# Non-interactive: no progress bar; crnn-onnx's log lines and its summary go to stderr once
# the run ends; stdout stays empty.
#
# Exit codes:
#   0    every image recognised; OUT written
#   1    the run failed (bad model, output folder missing or not writable, ...; reason on
#        stderr); OUT was not written, a previous OUT is unchanged
#   2    usage error (wrong arguments, DIR not a folder)
#   3    OUT written, but some images could not be read (their records carry "error";
#        the count is on stderr)
#   127  crnn-onnx is not installed (not on PATH)
set -euo pipefail

usage() {
    echo "usage: $0 DIR OUT.jsonl [MODEL]" >&2
    exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
dir=$1
out=$2
[[ -d $dir ]] || { echo "$0: '$dir' is not a folder" >&2; exit 2; }
command -v crnn-onnx >/dev/null || {
    echo "$0: crnn-onnx not found; install it with: pip install 'crnn-onnx[cpu]'" >&2
    exit 127
}
args=(--format jsonl --output "$out")
[[ $# -lt 3 ]] || args+=(--model "$3")
read -r -a extra <<< "${CRNN_PREDICT_ARGS:-}"
for arg in ${extra[@]+"${extra[@]}"}; do
    case $arg in
        -q|--quiet|-f|--format|--format=*|-o|--output|--output=*)
            echo "$0: CRNN_PREDICT_ARGS must not contain $arg" >&2
            exit 2 ;;
    esac
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The summary line ("N inputs: R recognised, F failed") is crnn-onnx's sign that the run
# reached its end and wrote OUT; a run that failed as a whole prints "error: ..." instead.
# "--" ends the options, so that a folder named like an option is still a folder.
# ${extra[@]+...}: an empty array is "unbound" to set -u in bash 3 (macOS).
crnn-onnx predict "${args[@]}" ${extra[@]+"${extra[@]}"} -- "$dir" 2> "$log" || status=$?
cat "$log" >&2
summary=$(grep -E '^[0-9]+ inputs?: [0-9]+ recognised, [0-9]+ failed$' "$log" || true)
case $status in
    0) exit 0 ;;
    2) exit 2 ;;
    1) if [[ -n $summary ]]; then
           echo "$0: some images could not be read; see the records with \"error\" in '$out'" >&2
           exit 3
       fi
       exit 1 ;;
    *) exit 1 ;;
esac
