#!/usr/bin/env bash
# Train this bundle with the python and torchrun found on PATH (see README.md).
#   one GPU, or this machine's CPU:    ./launch.sh
#   8 GPUs of this machine:            ./launch.sh --nproc 8
#   2 machines of 8 GPUs each:         ./launch.sh --nproc 8 --nnodes 2 --rdzv-endpoint HOST:29500   (on both)
#   a short try:                       ./launch.sh --max-steps 20
# Other options: --device auto|cpu|cuda|mps (default auto).
set -euo pipefail
cd "$(dirname "$0")"
NPROC=1
NNODES=1
ENDPOINT=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc) NPROC="$2"; shift 2 ;;
    --nnodes) NNODES="$2"; shift 2 ;;
    --rdzv-endpoint) ENDPOINT="$2"; shift 2 ;;
    --max-steps|--device) ARGS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "launch.sh: unknown option $1 (see ./launch.sh --help)" >&2; exit 2 ;;
  esac
done
command -v python >/dev/null || { echo "launch.sh: no python on PATH" >&2; exit 2; }
command -v torchrun >/dev/null || { echo "launch.sh: no torchrun on PATH (it comes with PyTorch: pip install torch)" >&2; exit 2; }
python -c "import torch, numpy, safetensors" 2>/dev/null || {
  echo "launch.sh: this bundle needs torch, numpy and safetensors: pip install torch numpy safetensors" >&2; exit 2; }
if [ "$NNODES" -gt 1 ]; then
  [ -n "$ENDPOINT" ] || { echo "launch.sh: --nnodes needs --rdzv-endpoint HOST:PORT (a machine every node reaches)" >&2; exit 2; }
  exec torchrun --nnodes "$NNODES" --nproc_per_node "$NPROC" --rdzv_backend c10d --rdzv_endpoint "$ENDPOINT" \
    --rdzv_id cllm-bundle train.py ${ARGS[@]+"${ARGS[@]}"}
fi
exec torchrun --standalone --nproc_per_node "$NPROC" train.py ${ARGS[@]+"${ARGS[@]}"}
