"""Peer figures for the CUDA projections: torch.nn.functional.linear (cuBLAS) on the model's shapes, bf16 in and out,
median of triton.testing.do_bench (L2 flushed between runs). One JSON line per shape, on the card the run lands on."""
import json
import torch
import triton.testing

shapes = [(m, n, k) for m in (1, 8, 64, 4096) for (n, k) in ((4096, 2304), (2304, 4096), (12288, 2304))]
for m, n, k in shapes:
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    ms = triton.testing.do_bench(lambda: torch.nn.functional.linear(x, w), warmup=50, rep=300, return_mode="median")
    us = ms * 1000
    print(json.dumps({"kernel": "torch_linear", "m": m, "n": n, "k": k, "device": torch.cuda.get_device_name(),
                      "median_us": round(us, 2), "tflop_per_s": round(2 * m * n * k / (us * 1e-6) / 1e12, 1),
                      "gb_per_s": round((2 * n * k + 2 * m * (n + k)) / (us * 1e-6) / 1e9, 1)}))
