#!/usr/bin/env bash
# Asserts that the sm_120a build of the kernels really runs on tensor cores: disassembles
# the kernels library with cuobjdump and checks that every kernel named below has its
# tensor-core instruction in its sm_120a SASS (HMMA for the bf16 kernels, QMMA for the e4m3
# ones), so a silent scalar fallback cannot pass CI.
# Where cuobjdump is absent (the Debian CI machine's CUDA install lacks it), the same
# kernels are compiled to sm_120a PTX with nvcc and must contain mma.sync (the e4m3 form for
# the FP8 kernels) instead: a weaker check (ptxas could still lower it badly), said so on
# stdout, never a skip.
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
tensor_core_kernels=(linear_bf16_tiled_kernel Bf16SmallMPolicy mla_decode_split_kv_kernel
                     Fp8SmallMPolicy linear_fp8_tiled_kernel moe_fp8_gemm_kernel MoeFp8SmallMPolicy)

# The SASS opcode each kernel's sm_120a code must contain, and the PTX line standing in for it.
sass_opcode() {
  case $1 in
    linear_fp8_* | moe_fp8_* | *Fp8SmallMPolicy) echo QMMA ;;
    *) echo HMMA ;;
  esac
}
ptx_pattern() {
  case $1 in
    linear_fp8_* | moe_fp8_* | *Fp8SmallMPolicy) echo 'mma[.]sync[.]aligned[.]m16n8k32[.]row[.]col[.]f32[.]e4m3[.]e4m3[.]f32' ;;
    *) echo 'mma[.]sync' ;;
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
  nvcc=${NVCC:-${CUDA_HOME:-/usr/local/cuda}/bin/nvcc}
  echo "check-sass: cuobjdump not found; checking sm_120a PTX for mma.sync instead of SASS for HMMA / QMMA"
  ptx_dir=$(mktemp -d)
  trap 'rm -rf "$ptx_dir"' EXIT
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
    for source in $sources; do
      ptx="$ptx_dir/$(basename "$source" .cu).ptx"
      "$nvcc" -std=c++17 --expt-relaxed-constexpr -arch=sm_120a -ptx -Iinclude -Ikernels "$source" -o "$ptx"
      # Per .entry whose name contains the kernel: count of its mma.sync lines.
      pattern=$(ptx_pattern "$kernel")
      counts=$(awk -v kernel="$kernel" -v pattern="$pattern" '
        /^(\.visible )?\.entry/ { name = $NF; sub(/\(.*/, "", name); active = index(name, kernel) > 0; if (active) mma[name] += 0 }
        $0 ~ pattern { if (active) mma[name]++ }
        END { for (f in mma) printf "%s\t%d\n", f, mma[f] }' "$ptx")
      if [[ -z $counts ]]; then
        echo "check-sass: FAILED: no PTX entry matching '$kernel' in $source" >&2
        status=1
      fi
      while IFS=$'\t' read -r name count; do
        [[ -z $name ]] && continue
        if (( count == 0 )); then
          echo "check-sass: FAILED: $name has no line matching $pattern in its sm_120a PTX" >&2
          status=1
        else
          echo "check-sass: ok (PTX): $kernel: $count $(sass_opcode "$kernel")-form mma.sync in $name"
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
