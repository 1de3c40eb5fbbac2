#!/usr/bin/env bash
# Export a PyTorch CRNN checkpoint to ONNX and verify it, for CI.
#
# Usage: scripts/export_and_verify.sh CKPT [OUT]
#   CKPT   the checkpoint (.pth) to export
#   OUT    the ONNX file to write (default: CKPT with .onnx, as `crnn-onnx export` does)
#
# `crnn-onnx export` compares ONNX Runtime with PyTorch (batches 1, 3, 8; widths 100, 160,
# 320) before the file appears, and writes nothing when they differ by more than its --atol.
# More options for `crnn-onnx export` (e.g. "--config my.yaml --atol 1e-3"; space-separated,
# --output and --no-verify excepted) can be given in CRNN_EXPORT_ARGS. Non-interactive: the
# export report goes to stderr; stdout carries only the written path.
#
# Exit codes:
#   0    exported and verified; OUT holds the model, its path is printed on stdout
#   1    export or verification failed (reason on stderr); OUT was not written or changed
#   2    usage error (wrong arguments, CKPT not a file)
#   127  crnn-onnx is not installed (not on PATH)
set -euo pipefail

usage() {
    echo "usage: $0 CKPT [OUT]" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
ckpt=$1
[[ -f $ckpt ]] || { echo "$0: checkpoint '$ckpt' is not a file" >&2; exit 2; }
if [[ $# -eq 2 ]]; then
    out=$2
else
    name=$(basename -- "$ckpt")
    out="$(dirname -- "$ckpt")/${name%.*}.onnx"
fi
command -v crnn-onnx >/dev/null || {
    echo "$0: crnn-onnx not found; install it with: pip install 'crnn-onnx[cpu,export]'" >&2
    exit 127
}

read -r -a extra <<< "${CRNN_EXPORT_ARGS:-}"
for arg in ${extra[@]+"${extra[@]}"}; do
    case $arg in
        --no-verify|--output|-o|--output=*)
            echo "$0: CRNN_EXPORT_ARGS must not contain $arg" >&2
            exit 2 ;;
    esac
done

status=0
# ${extra[@]+...}: an empty array is "unbound" to set -u in bash 3 (macOS).
crnn-onnx export --ckpt "$ckpt" --output "$out" --verify ${extra[@]+"${extra[@]}"} >&2 \
    || status=$?
case $status in
    0) echo "$out" ;;
    2) exit 2 ;;  # crnn-onnx rejected the options (given in CRNN_EXPORT_ARGS)
    *) echo "$0: export of '$ckpt' failed (exit $status); '$out' was not written" >&2
       exit 1 ;;
esac
