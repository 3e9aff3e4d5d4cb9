#!/usr/bin/env python3
"""cuBLAS through PyTorch at the prefill shapes of `kernel_roofline fp8`: torch._scaled_mm
(e4m3 x e4m3 -> bf16, tensorwise and rowwise scales) and bf16 torch.matmul, in TFLOP/s, for
context beside the mma.sync peaks kernel_roofline reports the FP8 GEMM against.

usage: python3 bench/cublas_fp8.py [--quick]   (--quick: m = 4096 only)
"""
import datetime
import sys

import torch


def projections():
    """(name, n, k) per GPU, the list and names of roofline_fp8.cpp."""
    rows = [("DeepSeek-V3 q_a", 1536, 7168), ("DeepSeek-V3 kv_a", 576, 7168)]
    for tp in (4, 8):
        rows += [(f"DeepSeek-V3 q_b/{tp}", 128 * 192 // tp, 1536), (f"DeepSeek-V3 o/{tp}", 7168, 128 * 128 // tp),
                 (f"DeepSeek-V3 dense gate_up/{tp}", 2 * 18432 // tp, 7168),
                 (f"DeepSeek-V3 dense down/{tp}", 7168, 18432 // tp)]
    for tp in (4, 8):
        rows += [(f"GLM-4.7 q/{tp}", 96 * 128 // tp, 5120), (f"GLM-4.7 k|v/{tp}", 8 * 128 // tp, 5120),
                 (f"GLM-4.7 o/{tp}", 5120, 96 * 128 // tp), (f"GLM-4.7 dense gate_up/{tp}", 2 * 12288 // tp, 5120),
                 (f"GLM-4.7 dense down/{tp}", 5120, 12288 // tp)]
    for tp in (4, 8):
        rows += [(f"MiniMax-M2 q/{tp}", 48 * 128 // tp, 3072), (f"MiniMax-M2 k|v/{tp}", 8 * 128 // tp, 3072),
                 (f"MiniMax-M2 o/{tp}", 3072, 48 * 128 // tp)]
    return [("square", 8192, 8192)] + [(f"{name} {k}->{n}", n, k) for name, n, k in rows]


def seconds_per_call(fn, iterations=10, repeats=3):
    """Median over `repeats` batches, CUDA events around each batch of `iterations` calls."""
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(iterations):
            fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) / 1e3 / iterations)
    return sorted(samples)[len(samples) // 2]


def tflops(fn, m, n, k):
    try:
        return f"{2.0 * m * n * k / seconds_per_call(fn) / 1e12:.1f}"
    except RuntimeError as error:  # a scaling mode this build or GPU does not support
        return f"n/a ({str(error).splitlines()[0][:60]})"


def main():
    quick = "--quick" in sys.argv[1:]
    device = torch.device("cuda")
    fp8 = torch.float8_e4m3fn
    print(f"# cuBLAS via PyTorch {torch.__version__}: {torch.cuda.get_device_name()}, "
          f"{datetime.date.today().isoformat()}\n")
    print("| shape | m | FP8 tensorwise TFLOP/s | FP8 rowwise TFLOP/s | BF16 TFLOP/s |\n|---|---|---|---|---|")
    for name, n, k in projections():
        for m in ([4096] if quick else [2048, 4096]):
            a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
            w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
            a8, w8 = a.to(fp8), w.to(fp8)
            one = torch.ones((), device=device)
            row_a, row_w = torch.ones(m, 1, device=device), torch.ones(1, n, device=device)
            tensorwise = tflops(lambda: torch._scaled_mm(a8, w8.t(), scale_a=one, scale_b=one,
                                                         out_dtype=torch.bfloat16), m, n, k)
            rowwise = tflops(lambda: torch._scaled_mm(a8, w8.t(), scale_a=row_a, scale_b=row_w,
                                                      out_dtype=torch.bfloat16), m, n, k)
            bf16 = tflops(lambda: torch.matmul(a, w.t()), m, n, k)
            print(f"| {name} | {m} | {tensorwise} | {rowwise} | {bf16} |")


if __name__ == "__main__":
    main()
