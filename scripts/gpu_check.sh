#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: run the CUDA tests, then time ONNX Runtime on CUDA (IO
# binding on/off, fp32 and `export --fp16`, batch 1/32/256, cuDNN algorithm search) and print
# a Markdown table for the README. Needs onnxruntime-gpu (the gpu extra, not the cpu one),
# torch for the fp16 export, and crnn-onnx on PATH.
#
# Usage: scripts/gpu_check.sh [--cpu]
#   --cpu   run the same steps on the CPU with short timings: checks the script, not a GPU
#
# Exit codes:
#   0    tests passed and the table was printed
#   1    a test or a measurement failed
#   2    usage error, or no usable GPU (nvidia-smi missing, or ONNX Runtime without CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda seconds=2 batches=1,32,256
if [[ $# -gt 0 ]]; then
    [[ $# -eq 1 && $1 == --cpu ]] || { echo "usage: $0 [--cpu]" >&2; exit 2; }
    device=cpu seconds=0.05 batches=1,4
fi
if [[ $device == cuda ]]; then
    command -v nvidia-smi >/dev/null || { echo "$0: no nvidia-smi: no GPU here" >&2; exit 2; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2
    python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" \
        || { echo "$0: this onnxruntime has no CUDA provider: install onnxruntime-gpu" >&2; exit 2; }
    python -m pytest -q tests/test_onnxruntime_engine.py -k cuda >&2 || exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
crnn-onnx export --ckpt weights/crnn.pth --fp16 --output "$work/crnn.fp16.onnx" >&2 || exit 1
python scripts/gpu_check.py --model weights/crnn.onnx --fp16-model "$work/crnn.fp16.onnx" \
    --device "$device" --seconds "$seconds" --batches "$batches" || exit 1
