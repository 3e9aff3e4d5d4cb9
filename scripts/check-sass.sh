#!/usr/bin/env bash
# Asserts that the sm_120a build of the kernels really runs on tensor cores: disassembles
# the kernels library with cuobjdump and checks that every kernel named below has its
# tensor-core instruction in its sm_120a SASS (HMMA for the bf16 kernels, QMMA for the e4m3
# ones), so a silent scalar fallback cannot pass CI.
# Where cuobjdump is absent (the Debian CI machine's CUDA install lacks it), the kernels'
# sources are compiled to sm_120a cubins with nvcc and scripts/cubin_opcodes.py reads the same
# SASS from the binary: the HMMA / QMMA opcodes are calibrated in the run from one-mma kernels.
# Said so on stdout, never a skip.
# Usage: scripts/check-sass.sh [BUILD_DIR]   (default: build)
# Exit 0 = all present, 1 = a kernel lacks tensor-core instructions or is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
library="$build/kernels/librackserve_kernels.a"

# Substrings of the (mangled) kernel names that must use tensor cores. Attention kernels
# join this list as they land. The small-M GEMMs are one template (gemm/small_m_stream.cuh),
# told apart by their policy: Bf16SmallMPolicy, Fp8SmallMPolicy (which also matches the FP8
# experts' MoeFp8SmallMPolicy), MoeFp8SmallMPolicy.
tensor_core_kernels=(linear_bf16_tiled_kernel Bf16SmallMPolicy mla_decode_split_kv_kernel gqa_prefill_kernel
                     Fp8SmallMPolicy linear_fp8_tiled_kernel moe_fp8_gemm_kernel MoeFp8SmallMPolicy)

# The SASS opcode each kernel's sm_120a code must contain.
sass_opcode() {
  case $1 in
    linear_fp8_* | moe_fp8_* | *Fp8SmallMPolicy) echo QMMA ;;
    *) echo HMMA ;;
  esac
}

if [[ ! -f $library ]]; then
  echo "check-sass: $library not found (no CUDA build in $build)" >&2
  exit 1
fi
cuobjdump=${CUOBJDUMP:-$(command -v cuobjdump || true)}
for candidate in "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump" /usr/local/cuda/bin/cuobjdump; do
  [[ -z $cuobjdump && -x $candidate ]] && cuobjdump=$candidate
done
if [[ -z $cuobjdump ]]; then
  # Without cuobjdump: each kernel's sources compiled to sm_120a cubins, their SASS scanned by
  # scripts/cubin_opcodes.py for the HMMA / QMMA opcode, calibrated in this run from one-mma
  # kernels (the same instructions cuobjdump would show, read from the binary).
  nvcc=${NVCC:-${CUDA_HOME:-/usr/local/cuda}/bin/nvcc}
  cubin_dir=$(mktemp -d)
  trap 'rm -rf "$cubin_dir"' EXIT
  declare -A opcode_of
  while read -r form opcode; do opcode_of[$form]=$opcode; done \
    < <(python3 scripts/cubin_opcodes.py calibrate --nvcc "$nvcc" --arch sm_120a) || exit 1
  echo "check-sass: cuobjdump not found; reading sm_120a SASS from cubins (HMMA = opcode ${opcode_of[hmma]}, QMMA = ${opcode_of[qmma]}, calibrated)"
  status=0
  for kernel in "${tensor_core_kernels[@]}"; do
    # The .cu files naming the kernel; where none does, those including a .cuh that defines it
    # (a kernel template instantiated through a dispatcher, like moe_fp8_gemm_kernel).
    sources=$(grep -rl --include='*.cu' "$kernel" kernels || true)
    if [[ -z $sources ]]; then
      for header in $(grep -rl --include='*.cuh' "$kernel" kernels || true); do
        sources+=$'\n'$(grep -rlF --include='*.cu' "\"${header#kernels/}\"" kernels || true)
      done
      sources=$(grep '\.cu$' <<< "$sources" | sort -u || true)
    fi
    if [[ -z $sources ]]; then
      echo "check-sass: FAILED: no source under kernels/ defines '$kernel'" >&2
      status=1
      continue
    fi
    opcode=$(sass_opcode "$kernel")
    for source in $sources; do
      cubin="$cubin_dir/$(basename "$source" .cu).cubin"
      [[ -f $cubin ]] || "$nvcc" -std=c++20 --expt-relaxed-constexpr -O3 -arch=sm_120a -cubin -Iinclude -Ikernels \
        "$source" -o "$cubin" || { status=1; continue; }
      if ! counts=$(python3 scripts/cubin_opcodes.py count --opcode "${opcode_of[${opcode,,}]}" --kernel "$kernel" "$cubin"); then
        echo "check-sass: FAILED: no sm_120a kernel matching '$kernel' in $source" >&2
        status=1
        continue
      fi
      while IFS=$'\t' read -r name count; do
        if (( count == 0 )); then
          echo "check-sass: FAILED: $name has no $opcode in its sm_120a SASS (scalar fallback?)" >&2
          status=1
        else
          echo "check-sass: ok (cubin): $kernel: $count $opcode in $name"
        fi
      done <<< "$counts"
    done
  done
  exit $status
fi

sass=$(mktemp)
trap 'rm -f "$sass"' EXIT
"$cuobjdump" --dump-sass "$library" > "$sass"

# Per sm_120 function: "name<TAB>count of HMMA lines<TAB>count of QMMA lines".
summary=$(awk '
  /code for sm_/ { arch = $NF }
  /Function :/ { name = $NF; if (arch ~ /^sm_120/) { hmma[name] += 0; qmma[name] += 0 } }
  /HMMA/ { if (arch ~ /^sm_120/ && name != "") hmma[name]++ }
  /QMMA/ { if (arch ~ /^sm_120/ && name != "") qmma[name]++ }
  END { for (f in hmma) printf "%s\t%d\t%d\n", f, hmma[f], qmma[f] }' "$sass")
if [[ -z $summary ]]; then
  echo "check-sass: FAILED: no sm_120 code in $library (is RACKSERVE_CUDA_ARCHS missing 120a?)" >&2
  exit 1
fi

status=0
for kernel in "${tensor_core_kernels[@]}"; do
  matches=$(grep -F "$kernel" <<< "$summary" || true)
  if [[ -z $matches ]]; then
    echo "check-sass: FAILED: no sm_120a kernel matching '$kernel' in $library" >&2
    status=1
    continue
  fi
  opcode=$(sass_opcode "$kernel")
  while IFS=$'\t' read -r name hmma qmma; do
    count=$hmma
    if [[ $opcode == QMMA ]]; then count=$qmma; fi
    if (( count == 0 )); then
      echo "check-sass: FAILED: $name has no $opcode in its sm_120a SASS (scalar fallback?)" >&2
      status=1
    else
      echo "check-sass: ok: $kernel: $count $opcode in $name"
    fi
  done <<< "$matches"
done
exit $status
