#!/usr/bin/env bash
# Writes the untuned (tuned: false) fused-MoE config files of the SM120 cards for the per-GPU
# shapes of the real models, with `rackserve tune-moe --untuned-defaults` (no GPU needed).
# Usage: configs/kernels/generate-untuned-defaults.sh RACKSERVE_BINARY MODELS_DIR
#   MODELS_DIR holds deepseek-v3/config.json, kimi-k2/config.json, minimax-m2.5/config.json and
#   glm-4.7-fp8/config.abridged.json (the reference configs of the project's shared models).
# Tuned files replace these: rackserve tune-moe on the card itself (docs/kernels.md).
set -euo pipefail
rackserve=${1:?usage: $0 RACKSERVE_BINARY MODELS_DIR}
models=${2:?usage: $0 RACKSERVE_BINARY MODELS_DIR}
out=$(dirname "$0")

devices=(
  "NVIDIA RTX PRO 6000 Blackwell Server Edition"
  "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"
  "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"
  "NVIDIA GeForce RTX 5090"
)
# config, dtype, TP sizes. DeepSeek-V3/R1 and GLM-5 share E=256 N=2048/TP; Kimi K2 is E=384.
# MiniMax-M2 (N=1536) stops at TP 4: 1536/8 = 192 is not a multiple of the 128-wide scale blocks.
shapes=(
  "deepseek-v3/config.json fp8_block 1 2 4 8"
  "kimi-k2/config.json fp8_block 1 2 4 8"
  "minimax-m2.5/config.json fp8_block 1 2 4"
  "glm-4.7-fp8/config.abridged.json fp8_channel 1 2 4 8"
)
for device in "${devices[@]}"; do
  for shape in "${shapes[@]}"; do
    read -r config dtype tps <<<"$shape"
    for tp in $tps; do
      "$rackserve" tune-moe --untuned-defaults --device-name "$device" --sm 120 \
        --model "$models/$config" --tp "$tp" --dtype "$dtype" --out "$out"
    done
  done
done
