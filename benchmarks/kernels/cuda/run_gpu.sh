#!/bin/sh
# CUDA kernel benchmarks at full size (bpr/ials at d=64 on 1M users x 100k items; top-K on 100k and 1M items): one JSON line each.
exec "${1:-build}/benchmarks/kernels/cuda/freshet_kernels_cuda_bench" --users 1000000 --items 100000 --dim 64 --batch 1024 --topk-items 100000,1000000 --k 20
