"""Training-time attention core: ``causal_self_attention`` vs ``F.scaled_dot_product_attention``.

Both sides start from the fused ``(B, T, 3C)`` projection and end at the merged ``(B, T, C)``
heads, with RoPE, and run forward and backward. The reference is what ``MultiHeadAttention`` does
without ``nn/fast/causal_attention.py``: split the heads (views), rotate queries and keys
(``RotaryPositions.rotate_heads``), torch's fused causal kernel, merge the heads. Rounds alternate
between the two; the best time of each is printed, and the ratio (above 1: ours is faster).

Usage:  python benchmarks/bench_attention.py [--threads 2 --rounds 15]
The shapes run are (B, nh, T, hs); the pretrain model trains at (16, 4, 128, 32).
``MultiHeadAttention`` uses ``causal_self_attention`` up to ``MATERIALIZED_MAX_T`` (512); the
longer shapes show how it would fare beyond.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from nlpcurriculum.nn.fast.causal_attention import causal_self_attention
from nlpcurriculum.nn.positional import RotaryPositions

SHAPES = [(16, 4, 128, 32), (8, 8, 128, 64), (16, 4, 256, 32), (8, 8, 256, 64), (4, 8, 512, 64),
          (2, 8, 1024, 64), (1, 8, 2048, 64)]


def per_op_path(qkv, rope, positions, nh):
    B, T, C3 = qkv.shape
    hs = C3 // (3 * nh)
    heads = qkv.view(B, T, 3 * nh, hs).transpose(1, 2)  # (B, 3nh, T, hs)
    qk, v = heads.split([2 * nh, nh], dim=1)
    q, k = rope.rotate_heads(qk, positions).split([nh, nh], dim=1)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(B, T, nh * hs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={torch.get_num_threads()}, forward + backward, best of {args.rounds}")
    for B, nh, T, hs in SHAPES:
        rope, positions = RotaryPositions(hs, T), torch.arange(T)
        rotation = rope.rotation_angles(positions)
        qkv = torch.randn(B, T, 3 * nh * hs, requires_grad=True)
        grad = torch.randn(B, T, nh * hs)
        runs = {
            "sdpa": lambda: per_op_path(qkv, rope, positions, nh),
            "ours": lambda: causal_self_attention(qkv, nh, rotation),
        }
        outs = {k: f() for k, f in runs.items()}
        assert torch.allclose(outs["ours"], outs["sdpa"], atol=1e-4), "the two paths disagree"
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(args.rounds):
            for k, f in runs.items():
                t = time.perf_counter()
                f().backward(grad)
                best[k] = min(best[k], time.perf_counter() - t)
                qkv.grad = None
        print(f"  B={B:2d} nh={nh} T={T:4d} hs={hs}: sdpa {best['sdpa'] * 1e3:7.2f} ms, "
              f"ours {best['ours'] * 1e3:7.2f} ms, ratio {best['sdpa'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()
