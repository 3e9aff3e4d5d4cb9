#!/usr/bin/env bash
# The GPU half of the test suite, for a machine with a CUDA device: builds build-gpu/
# (no text/API modules, so cpp-httplib and PCRE2 are not needed), runs `ctest -L gpu`,
# compute-sanitizer memcheck + racecheck over the kernel tests, the sm_120a SASS check
# (cuobjdump), and the benchmarks; every log goes to OUT_DIR (default gpu-suite-out/).
# Usage: scripts/gpu-suite.sh [tests|sanitize|sass|doctor|fixtures|tune|bench|profile]...
#        (default: tests sanitize sass doctor bench)
# MODELS_DIR (default ../shared/models) holds the real config.json files the tune and bench
# steps read; CTEST_JOBS (default 1) runs GPU tests in parallel (correctness only).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-gpu-suite-out}
mkdir -p "$out"
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(tests sanitize sass doctor bench)
models=${MODELS_DIR:-../shared/models}
generator=$(command -v ninja > /dev/null && echo Ninja || echo "Unix Makefiles")
status=0
# Each line also lands in summary.txt at once, so a run cut short keeps what it measured.
: > "$out/summary.txt"
note() { echo "$1" >> "$out/summary.txt"; echo "== $1"; }
# run_noted LABEL LOG COMMAND...: runs COMMAND with its output appended to LOG, notes its exit
# status under LABEL, and fails the suite when it is not 0.
run_noted() {
  local label=$1 log=$2
  shift 2
  "$@" >> "$log" 2>&1
  local rc=$?
  (( rc != 0 )) && status=1
  note "$label: rc $rc$( (( rc == 124 )) && echo ' (timeout)')"
}

start=$(date +%s)
if ! cmake -S . -B build-gpu -G "$generator" -DCMAKE_BUILD_TYPE=Release -DRACKSERVE_TEXT=OFF \
     -DRACKSERVE_CUDA=ON ${RACKSERVE_CUDA_ARCHS:+-DRACKSERVE_CUDA_ARCHS=$RACKSERVE_CUDA_ARCHS} > "$out/configure.log" 2>&1 ||
   ! cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1; then
  tail -n 40 "$out/build.log" "$out/configure.log"
  echo "gpu-suite: build failed"
  exit 1
fi
note "build: $(( $(date +%s) - start )) s"

for step in "${steps[@]}"; do
  case $step in
    tests)
      ctest --test-dir build-gpu -L gpu --output-on-failure -j "${CTEST_JOBS:-1}" > "$out/ctest-gpu.log" 2>&1 || status=1
      note "ctest -L gpu: $(grep -E 'tests passed|tests failed' "$out/ctest-gpu.log" | tail -1)"
      grep -E '^\s+[a-z0-9_-]+ .*(cosine|graphs|captured|min )' -h build-gpu/Testing/Temporary/LastTest.log 2>/dev/null | head -30 > "$out/test-prints.log" || true
      ;;
    sanitize)
      # Each kernel test under both tools, on its smaller cases (the sanitizers slow kernels
      # 10-100x), each bounded by SANITIZE_TIMEOUT seconds (memcheck) or RACECHECK_TIMEOUT
      # (racecheck, slower still) so one slow case cannot eat the run. On 2026-12-04 racecheck of
      # step_graphs, linear_fp8 and kv_cache_fp8 did not finish in 50 s.
      # SANITIZE_CASES="test:filter ..." picks a subset.
      cases=("backend_ops_test:*" "sampling_cuda_test:*MatchesCpuReference*:*EveryTokenMasked*"
             "step_graphs_test:*NewCacheRecaptures/0" "linear_fp8_cuda_test:*SmallShapes*:*Upload*:*Invalid*"
             "mla_decode_test:*TinyShape*:*PageSizeNotPowerOfTwo*" "moe_experts_test:*TinyFixtureShapes*:*AlignTokens*"
             "kv_cache_fp8_cuda_test:*WriteStores*:*AttentionKernels*" "moe_fp8_cuda_test:*Tiny*"
             "fill_random_test:*" "fp8_activation_cuda_test:*" "linear_prefill_test:*LinearSplit*:*Overlapped*"
             "linear_fp8_cuda_test:*Split*:*Overlapped*")
      # custom_all_reduce_test is not run under the sanitizers: they serialize kernels, and
      # ranks sharing one GPU wait for each other's kernels (it would hang until its timeout).
      [[ -n ${SANITIZE_CASES:-} ]] && read -r -a cases <<< "$SANITIZE_CASES"
      for tool in memcheck racecheck; do
        for entry in "${cases[@]}"; do
          test=${entry%%:*}
          filter=${entry#*:}
          binary=$(find build-gpu/tests/gpu -maxdepth 1 -name "$test" -type f | head -1)
          [[ -z $binary ]] && { note "compute-sanitizer $tool $test: binary missing"; status=1; continue; }
          log="$out/sanitize-$tool-$test.log"
          limit=${SANITIZE_TIMEOUT:-120}
          [[ $tool == racecheck ]] && limit=${RACECHECK_TIMEOUT:-300}
          timeout "$limit" compute-sanitizer --tool "$tool" --error-exitcode 9 "$binary" \
            --gtest_filter="$filter" > "$log" 2>&1
          rc=$?
          (( rc != 0 )) && status=1
          note "compute-sanitizer $tool $test: rc $rc$( (( rc == 124 )) && echo ' (timeout)'), $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1), $(grep -cE '^\[       OK' "$log") ok"
        done
      done
      ;;
    doctor)
      run_noted doctor "$out/doctor.txt" timeout 120 build-gpu/src/cli/rackserve doctor
      ;;
    sass)
      scripts/check-sass.sh build-gpu > "$out/check-sass.log" 2>&1 || status=1
      note "check-sass: $(grep -c 'ok' "$out/check-sass.log") ok, $(grep -c FAILED "$out/check-sass.log") failed"
      ;;
    fixtures)
      # Regenerates the FP8 fixtures and makes the GQA ones (GLM-4.x, MiniMax-M2), the DSA
      # ones (GLM-5, DeepSeek-V3.2) and the INT4 ones (Kimi-K2.5 experts) with transformers
      # (CPU torch is enough; the device machine has it): copy $out/fixtures/* over
      # tests/data/models/ and rerun the model tests.
      fixtures=$(realpath -m "$out/fixtures")
      rm -rf "$fixtures"
      (cd tests/reference && PYTHONUNBUFFERED=1 timeout 600 python3 make_fp8_fixtures.py "$fixtures") \
        > "$out/fixtures.log" 2>&1 || status=1
      note "make_fp8_fixtures.py: $(tail -1 "$out/fixtures.log")"
      (cd tests/reference && PYTHONUNBUFFERED=1 timeout 300 python3 make_gqa_fixtures.py "$fixtures") \
        > "$out/gqa-fixtures.log" 2>&1 || status=1
      note "make_gqa_fixtures.py: $(tail -1 "$out/gqa-fixtures.log")"
      (cd tests/reference && PYTHONUNBUFFERED=1 timeout 600 python3 make_dsa_fixtures.py "$fixtures") \
        > "$out/dsa-fixtures.log" 2>&1 || status=1
      note "make_dsa_fixtures.py: $(tail -1 "$out/dsa-fixtures.log")"
      # INT4 (pack-quantized routed experts, Kimi-K2.5) versions of the committed BF16 fixtures.
      (cd tests/reference && PYTHONUNBUFFERED=1 timeout 300 python3 make_int4_fixtures.py "$fixtures") \
        > "$out/int4-fixtures.log" 2>&1 || status=1
      note "make_int4_fixtures.py: $(tail -1 "$out/int4-fixtures.log")"
      rm -rf "$fixtures"/*-bf16  # make_fp8_fixtures' intermediate copies
      # One archive, so the result travels as a single plain file.
      [[ -d $fixtures ]] && tar czf "$out/fixtures.tgz" -C "$fixtures" .
      ;;
    tune)
      # The fused FP8 MoE configs of this device for the target models' per-GPU shapes, and
      # DeepSeek-V3 at TP 1 (the shape decode_step runs) (written under $out/kernels/<device>/;
      # commit them as configs/kernels/<device>/).
      # Columns: config, TP, dtype, time limit in seconds (TP 1's 2048-wide experts take longest;
      # on 2026-12-05 the TP 4 / 8 shapes took 15-35 s each with 3 repetitions on an H200).
      while read -r model tp dtype limit; do
        run_noted "tune-moe $model TP $tp $dtype" "$out/tune-moe.log" timeout "$limit" build-gpu/src/cli/rackserve tune-moe \
          --model "$models/$model" --tp "$tp" --dtype "$dtype" --repetitions "${TUNE_REPETITIONS:-5}" --out "$out/kernels"
      done <<< "deepseek-v3/config.json 8 fp8_block 120
deepseek-v3/config.json 4 fp8_block 120
deepseek-v3/config.json 1 fp8_block 400
kimi-k2/config.json 8 fp8_block 120
minimax-m2.5/config.json 4 fp8_block 120
glm-4.7-fp8/config.abridged.json 8 fp8_channel 120
glm-4.7-fp8/config.abridged.json 4 fp8_channel 120"
      # The file names hold commas and '=': archive them for transport.
      [[ -d $out/kernels ]] && tar czf "$out/kernels.tgz" -C "$out" kernels
      ;;
    bench)
      run_noted kernel_roofline "$out/kernel_roofline.md" timeout 240 build-gpu/bench/kernel_roofline
      run_noted "decode_step (FP8 checkpoint config)" "$out/decode_step.md" \
        timeout 120 build-gpu/bench/decode_step "$models/deepseek-v3" --batch 1,32
      run_noted "decode_step (FP8, plain launch order)" "$out/decode_step_plain_launches.md" \
        timeout 120 build-gpu/bench/decode_step "$models/deepseek-v3" --batch 1,32 --no-overlap-launches
      run_noted "decode_step (FP8, fusions off)" "$out/decode_step_unfused.md" \
        timeout 120 build-gpu/bench/decode_step "$models/deepseek-v3" --batch 1,32 --no-fuse-qkv-a --no-fuse-shared-expert
      run_noted "decode_step (BF16 weights)" "$out/decode_step_bf16.md" \
        timeout 120 build-gpu/bench/decode_step "$models/deepseek-v3" --batch 1,32 --dequantize-fp8
      # A GQA model (MiniMax-M2.5: FP8 blocks, 48/8 heads, q/k norm over all heads): the split-KV
      # GQA decode kernel and the fused k/v projection in a whole decode step.
      run_noted "decode_step (MiniMax-M2.5, GQA, FP8)" "$out/decode_step_minimax.md" \
        timeout 120 build-gpu/bench/decode_step "$models/minimax-m2.5" --batch 1,32
      # A DeepSeek-sparse-attention model (GLM-5.1 FP8) at a context past index_topk (2048): the
      # indexer's scores over 8k keys and its top-k choice, MLA over the chosen 2048.
      run_noted "decode_step (GLM-5.1, DSA, FP8, 8k context)" "$out/decode_step_glm5.md" \
        timeout 120 build-gpu/bench/decode_step "$models/glm-5.1-fp8" --batch 1,32 --context 8192
      # Kimi-K2.5 as shipped: INT4 routed experts (W4A16, groups of 32) streamed by the small-M
      # MoE kernels, everything else BF16.
      run_noted "decode_step (Kimi-K2.5, INT4 experts)" "$out/decode_step_kimi_int4.md" \
        timeout 120 build-gpu/bench/decode_step "$models/kimi-k2.5" --batch 1,32
      run_noted cublas_fp8.py "$out/cublas_fp8.md" timeout 60 python3 bench/cublas_fp8.py
      run_noted all_reduce "$out/all_reduce.md" timeout 60 build-gpu/bench/all_reduce
      ;;
    profile)
      # Nsight Compute over the kernels of DeepSeek-V3 decode steps (4 dummy layers: 3 dense,
      # 1 MoE; FP8 weights at batch 1 and 32, BF16 at batch 1): per kernel, DRAM throughput
      # against the peak, achieved occupancy and warp stall reasons, the "why" behind a roofline
      # fraction. Needs ncu and permission to read the GPU's counters; says which is missing.
      # --clock-control none: the clocks stay as the benchmarks see them.
      ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2> /dev/null | head -1)
      if [[ -z $ncu_bin ]]; then note "ncu: not found"; continue; fi
      for run in fp8:1 fp8:32 bf16:1; do
        weights=${run%%:*} batch=${run#*:}
        log="$out/ncu-decode-$weights-batch$batch.txt"
        # Past the warm-up steps (~100 launches each), about one step's launches.
        timeout 240 "$ncu_bin" --clock-control none --launch-skip 300 --launch-count 100 --print-summary per-kernel \
          --section SpeedOfLight --section Occupancy --section WarpStateStats \
          build-gpu/bench/decode_step "$models/deepseek-v3" --num-layers 4 --batch "$batch" --steps 2 \
          $([[ $weights == bf16 ]] && echo --dequantize-fp8) > "$log" 2>&1
        rc=$?
        grep -q ERR_NVGPUCTRPERM "$log" && { note "ncu: no permission to read the GPU counters"; break; }
        note "ncu decode $weights batch $batch: rc $rc, $(grep -c 'Duration' "$log") kernel summaries"
      done
      # The FP8 experts' GEMMs and the small-M GEMMs of the kernel roofline's first shapes
      # (DeepSeek-V3 TP 4, 1 token), with the stall reasons and the pipes' shares of issue.
      log="$out/ncu-moe-fp8.txt"
      timeout 120 "$ncu_bin" --clock-control none --kernel-name regex:'moe_fp8_gemm|small_m_kernel' --launch-count 6 \
        --print-details all --section SpeedOfLight --section WarpStateStats --section InstructionStats \
        --section SchedulerStats --section LaunchStats build-gpu/bench/kernel_roofline --quick moe_fp8 > "$log" 2>&1
      note "ncu moe_fp8: rc $?, $(grep -c 'Duration' "$log") kernel reports"
      ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo; cat "$out/summary.txt"
exit $status
