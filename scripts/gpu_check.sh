#!/usr/bin/env bash
# GPU checks (developer command) for a machine with an NVIDIA GPU and a CUDA build of torch:
# which GPU backends can run here and why not, the GPU backends against the CPU graph (tests/test_stcnn.py),
# and the per-frame step benchmark with its GPU rows. Needs torch, onnxruntime, numpy and pytest only.
#   scripts/gpu_check.sh            (PYTHON=... to pick the interpreter, STEPS=... benchmark steps)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
nvidia-smi -L || echo "nvidia-smi: no NVIDIA driver here"
"$PY" - <<'PYEOF'
import importlib.util

import onnxruntime as ort
import torch

gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, CUDA GPU: {gpu}")
print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
print(f"tensorrt package importable: {importlib.util.find_spec('tensorrt') is not None}")
PYEOF
status=0
"$PY" -m pytest --noconftest -p no:cacheprovider -rs tests/test_stcnn.py -k "cuda or tensorrt or onnxruntime" || status=1
"$PY" -m liverig.models.bench --weights models/weights/stcnn.pt --steps "${STEPS:-2000}" || status=1
exit $status
