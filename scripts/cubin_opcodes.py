#!/usr/bin/env python3
"""Tensor-core instructions in the SASS of a cubin, without cuobjdump.

scripts/check-sass.sh uses this where cuobjdump is absent (the Debian CI machine's CUDA install
has nvcc and ptxas only). Every instruction of Volta and later is 16 bytes with its opcode in the
low 12 bits of the first little-endian 64-bit word; the opcode numbers are not documented, so
they are calibrated in the same run: tiny kernels holding one mma.sync (bf16 m16n8k16, e4m3
m16n8k32) and a control without it are compiled for the same arch, and an instruction's opcode
is the one value the kernel with the mma has and the control lacks (HMMA, QMMA). On sm_120a
that is one value per form; on sm_90a, where e4m3 mma.sync is emulated, the e4m3 form yields
HMMA plus a conversion, which calibration reports as ambiguous.

  cubin_opcodes.py calibrate --nvcc NVCC --arch sm_120a        -> "hmma 0x..." / "qmma 0x..."
  cubin_opcodes.py count --opcode 0x... --kernel SUBSTRING CUBIN -> "name<TAB>count" per kernel
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

CALIBRATION = r"""
#include <cstdint>
// The same loads, and the same four-way f32 sum into out, in every kernel: only the mma differs.
#define OPERANDS \
  const uint32_t a0 = in[threadIdx.x], a1 = in[threadIdx.x + 32], a2 = in[threadIdx.x + 64], \
                 a3 = in[threadIdx.x + 96], b0 = in[threadIdx.x + 128], b1 = in[threadIdx.x + 160]; \
  const float z = 0.f; \
  float d0, d1, d2, d3;
#define MMA(form) \
  asm volatile("mma.sync.aligned." form " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};\n" \
               : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3) \
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(z));
#define SUM out[threadIdx.x] = d0 + d1 + d2 + d3;
extern "C" __global__ void calibrate_hmma(const uint32_t* in, float* out) {
  OPERANDS MMA("m16n8k16.row.col.f32.bf16.bf16.f32") SUM
}
extern "C" __global__ void calibrate_qmma(const uint32_t* in, float* out) {
  OPERANDS MMA("m16n8k32.row.col.f32.e4m3.e4m3.f32") SUM
}
extern "C" __global__ void calibrate_control(const uint32_t* in, float* out) {
  OPERANDS d0 = __uint_as_float(a0 ^ b0); d1 = __uint_as_float(a1 ^ b1); d2 = __uint_as_float(a2 + z);
  d3 = __uint_as_float(a3); SUM
}
"""


def text_sections(path):
    """{kernel name: code bytes} of the .text.<kernel> sections of an ELF64 cubin."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not an ELF64 cubin")
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    names_offset = headers[names_index][4]

    def name_at(offset):
        start = names_offset + offset
        return data[start:data.index(b"\0", start)].decode()

    sections = {}
    for name_offset, _, _, _, offset, size, *_ in headers:
        name = name_at(name_offset)
        if name.startswith(".text."):
            sections[name[len(".text."):]] = data[offset:offset + size]
    return sections


def opcodes(code):
    """The opcode of every 16-byte instruction, in order."""
    return [struct.unpack_from("<Q", code, i)[0] & 0xFFF for i in range(0, len(code) - 15, 16)]


def calibrate(nvcc, arch):
    with tempfile.TemporaryDirectory() as directory:
        source = os.path.join(directory, "calibrate.cu")
        cubin = os.path.join(directory, "calibrate.cubin")
        with open(source, "w") as f:
            f.write(CALIBRATION)
        subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-O3", "-o", cubin, source], check=True)
        sections = text_sections(cubin)
    control = set(opcodes(sections["calibrate_control"]))
    result = {}
    for form in ("hmma", "qmma"):
        extra = set(opcodes(sections[f"calibrate_{form}"])) - control
        if len(extra) != 1:
            raise SystemExit(f"calibration: the {form} form on {arch} compiles to opcodes "
                             f"{sorted(map(hex, extra))}, not one instruction")
        result[form] = extra.pop()
    if result["hmma"] == result["qmma"]:
        raise SystemExit(f"calibration: the bf16 and e4m3 forms on {arch} compile to the same opcode")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    calibrate_command = commands.add_parser("calibrate")
    calibrate_command.add_argument("--nvcc", required=True)
    calibrate_command.add_argument("--arch", default="sm_120a")
    count_command = commands.add_parser("count")
    count_command.add_argument("--opcode", required=True, type=lambda text: int(text, 0))
    count_command.add_argument("--kernel", required=True, help="substring of the (mangled) kernel names")
    count_command.add_argument("cubin")
    args = parser.parse_args()
    if args.command == "calibrate":
        for form, opcode in calibrate(args.nvcc, args.arch).items():
            print(f"{form} {opcode:#x}")
        return 0
    matched = False
    for name, code in sorted(text_sections(args.cubin).items()):
        if args.kernel in name:
            matched = True
            print(f"{name}\t{opcodes(code).count(args.opcode)}")
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())
