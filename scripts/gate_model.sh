#!/usr/bin/env bash
# Gate a model on a labelled set: fail the CI job when word accuracy is below a minimum.
#
# Usage: scripts/gate_model.sh LABELS MIN_ACC [MODEL]
#   LABELS   TSV of 'relative/path<TAB>text' lines, paths relative to its folder (what
#            `crnn-onnx synth` writes)
#   MIN_ACC  the lowest word accuracy that passes, 0..1 (e.g. 0.9)
#   MODEL    ONNX model (default: the shipped weights/crnn.onnx)
#
# Runs `crnn-onnx eval LABELS --min-accuracy MIN_ACC --format json`. The JSON report
# (word_accuracy, cer, by_length, confusions, mistakes) goes to stdout, so it can be
# archived: scripts/gate_model.sh labels.tsv 0.9 > report.json. More options for
# `crnn-onnx eval` (e.g. "--device cuda --batch-size 64"; space-separated, --format and
# --min-accuracy excepted) can be given in CRNN_EVAL_ARGS. Non-interactive: warnings about
# unreadable images and the verdict go to stderr.
#
# Exit codes:
#   0    word accuracy >= MIN_ACC (the gate is open)
#   1    word accuracy < MIN_ACC (the gate is closed); the report is on stdout
#   2    usage error (wrong arguments, MIN_ACC not a number in 0..1)
#   3    could not evaluate (labels or model missing or unreadable; reason on stderr);
#        no report
#   127  crnn-onnx is not installed (not on PATH)
set -euo pipefail

usage() {
    echo "usage: $0 LABELS MIN_ACC [MODEL]" >&2
    exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
labels=$1
min_acc=$2
[[ $min_acc =~ ^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$ ]] || {
    echo "$0: MIN_ACC must be a number from 0 to 1, got '$min_acc'" >&2
    exit 2
}
command -v crnn-onnx >/dev/null || {
    echo "$0: crnn-onnx not found; install it with: pip install 'crnn-onnx[cpu]'" >&2
    exit 127
}
args=(--min-accuracy "$min_acc" --format json)
[[ $# -lt 3 ]] || args+=(--model "$3")
read -r -a extra <<< "${CRNN_EVAL_ARGS:-}"
for arg in ${extra[@]+"${extra[@]}"}; do
    case $arg in
        -f|--format|--format=*|--min-accuracy|--min-accuracy=*)
            echo "$0: CRNN_EVAL_ARGS must not contain $arg" >&2
            exit 2 ;;
    esac
done

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
# eval prints its report before it compares with the minimum: a report on stdout with
# exit 1 means "below the minimum"; exit 1 without one means it could not evaluate.
# ${extra[@]+...}: an empty array is "unbound" to set -u in bash 3 (macOS).
crnn-onnx eval "${args[@]}" ${extra[@]+"${extra[@]}"} -- "$labels" > "$report" || status=$?
cat "$report"
case $status in
    0) exit 0 ;;
    2) exit 2 ;;
    1) if [[ -s $report ]]; then
           exit 1
       fi
       echo "$0: could not evaluate '$labels'" >&2
       exit 3 ;;
    *) exit 3 ;;
esac
