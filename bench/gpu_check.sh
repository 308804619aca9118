#!/usr/bin/env bash
# The checks that need a GPU, in a few minutes, on a machine with one or more NVIDIA GPUs:
#
#   bash tools/setup.sh bench                 # once: the library, the test tools and TRL in .venv
#   .venv/bin/pip install torch==2.13.0 --index-url <your CUDA wheel index>   # if `torch.cuda.is_available()` is False
#   bash bench/gpu_check.sh [OUT_DIR]         # default OUT_DIR: bench/results/gpu
#
# 1. the precision-sensitive notebooks (loss, Learner, callbacks, checkpoints, inference) in bf16, then in fp16
#    (fp16 needs a GPU: the loss scaler, skipped steps);
# 2. `sft-nb train --num-processes 2` with DDP (NCCL) and with `distributed: {strategy: fsdp}` when there are 2 GPUs,
#    on a tiny model, each against the 1-process run of the same config;
# 3. the benchmark comparisons with HF Trainer and TRL in bf16 (`--device cuda`), small sizes.
# Every step writes its log to OUT_DIR; the summary at the end says what passed. Record the figures in
# bench/README.md (the Benchmarks page) with the GPU's name, the date and the precision.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${1:-bench/results/gpu}; mkdir -p "$OUT"
ngpu=$($PY -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$ngpu" -lt 1 ]; then echo "gpu_check: torch sees no GPU here (install a CUDA build of torch==2.13.0)"; exit 1; fi
$PY -c "import torch; print('GPUs:', [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())], 'bf16:', torch.cuda.is_bf16_supported())" | tee "$OUT/env.txt"
declare -A status
step() { local name=$1; shift; echo "== $name"; if "$@" > "$OUT/$name.log" 2>&1; then status[$name]=passed; else status[$name]="FAILED (see $OUT/$name.log)"; fi; tail -3 "$OUT/$name.log"; }

NBS="07_loss or 10_learner or 11_callbacks.core or 12_callbacks.checkpoint or 16_inference"
step notebooks_bf16 env SFT_NB_PRECISION=bf16 $PY -m pytest -q -x tests/test_notebooks.py -k "$NBS"
step notebooks_fp16 env SFT_NB_PRECISION=fp16 $PY -m pytest -q -x tests/test_notebooks.py -k "$NBS"

if [ "$ngpu" -ge 2 ]; then
  work=$(mktemp -d)
  $PY - "$work" <<'EOF'
import sys, yaml
from pathlib import Path
from sft_nb.assets import tiny_model
w = Path(sys.argv[1]); tiny_model('bert', save_to=w/'model')
base = dict(model=str(w/'model'), epochs=1, batch_size=8, max_length=32, lr=1e-3, dropout=0.0, seed=0, precision='bf16',
            data={'name': 'rotten_tomatoes', 'max_train_examples': 256, 'max_eval_examples': 64})
for name, extra in (('ddp', {}), ('fsdp', {'distributed': {'strategy': 'fsdp'}})):
    (w/f'{name}.yaml').write_text(yaml.safe_dump({**base, **extra, 'output_dir': str(w/f'run_{name}')}))
(w/'one.yaml').write_text(yaml.safe_dump({**base, 'grad_accum': 2, 'output_dir': str(w/'run_one')}))
EOF
  step train_1_process .venv/bin/sft-nb train "$work/one.yaml"
  step train_ddp_2_gpus .venv/bin/sft-nb train "$work/ddp.yaml" --num-processes 2
  step train_fsdp_2_gpus .venv/bin/sft-nb train "$work/fsdp.yaml" --num-processes 2
  for r in one ddp fsdp; do echo "$r: $(cat "$work/run_$r/metrics.json" 2>/dev/null)"; done | tee "$OUT/train_metrics.txt"
fi

step bench_classification $PY bench/classification.py --device cuda --quick --contenders hf_default,hf_grouped,sft_nb --tag gpu
step bench_causal $PY bench/causal.py --device cuda --n-train 64 --contenders trl_default,trl_packed,sft_nb,sft_nb_packed --tag gpu
step bench_checkpointing $PY bench/checkpointing.py --device cuda --batch-size 8 --seq-len 1024

echo; echo "gpu_check summary ($OUT):"
for k in "${!status[@]}"; do echo "  $k: ${status[$k]}"; done | sort
[[ " ${status[*]} " != *FAILED* ]]
