"""Training throughput of the llama-like mini-former vs ``transformers.LlamaForCausalLM``, and MFU.

Both models get identical dimensions, the same batch, fp32 on the CPU, the same optimizer (torch's
fused AdamW) and the same measured work per step: forward, cross-entropy, backward, optimizer
step. Each computes its loss as its trainer does: transformers' model writes the ``(B, T, V)``
logits and ``F.cross_entropy`` reads them; ours is asked for the loss only
(``return_logits=False``, as ``lm_loss`` does) and fuses the output head with the cross-entropy
(``nn/fast/fused_loss.py``). Each model trains through its usual attention: transformers'
``sdpa``, ours through ``nn/fast/causal_attention.py`` for windows of up to 512 tokens. Timing
rounds alternate between the two models so background load hits both alike; the median step time
of each is reported.

MFU (model FLOPs utilisation, Chowdhery et al. 2022, arXiv:2204.02311, appendix B) divides the
useful training FLOPs, ``6 * N * tokens/s`` with N the non-embedding parameters (2 FLOPs per
multiply-add, x3 for forward + backward), by the machine's peak. The peak is measured in the same
run: the best fp32 GFLOP/s of a large square matmul. The ``6N`` rule leaves out attention's
``QK^T`` / ``AV`` FLOPs (12 * n_layers * T * d_model per token), so it slightly understates the
work done; that term is printed separately.

Usage:  python benchmarks/bench_model.py [--d-model 512 --layers 4 --seq 256 --batch 8 --threads 2 ...]
        add ``--compile`` to torch.compile both models (compilation takes about a minute each).
Targets: speedup >= 1.1x over transformers, MFU >= 45%. Run on a quiet machine: the numbers
are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from nlpcurriculum.models.hf_interop import hf_llama_config  # noqa: E402
from nlpcurriculum.models.miniformer import build_model, llama_like  # noqa: E402


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an ``n x n @ n x n`` matmul (2 n^3 FLOPs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up the BLAS threads
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def make_step(model, hf: bool, idx, targets, compile: bool = False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def loss_fn(idx, targets):
        if hf:
            logits = model(input_ids=idx, use_cache=False).logits
            return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return model(idx, targets=targets, return_logits=False).loss  # as the trainer's lm_loss

    if compile:
        loss_fn = torch.compile(loss_fn)

    def step() -> None:
        loss = loss_fn(idx, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5, help="timed steps per model (interleaved)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models' forward + loss")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = llama_like("tiny", vocab_size=args.vocab, d_model=args.d_model, n_layers=args.layers,
                     n_heads=args.heads, max_seq_len=args.seq)
    ours = build_model(cfg).train()
    from transformers import LlamaForCausalLM

    hf_cfg = hf_llama_config(cfg)
    # transformers' fastest CPU attention here: "eager" took 258 against 238 ms per step (pretrain dims)
    hf_cfg._attn_implementation = "sdpa"
    theirs = LlamaForCausalLM(hf_cfg).train()
    idx = torch.randint(0, args.vocab, (args.batch, args.seq))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq))
    steps = {
        "ours": make_step(ours, False, idx, targets, args.compile),
        "transformers": make_step(theirs, True, idx, targets, args.compile),
    }

    for _ in range(args.warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    peak = matmul_peak_gflops()

    tokens = args.batch * args.seq
    n_nonembed = ours.num_params(non_embedding=True)  # includes the untied lm_head (a real matmul)
    tps = {k: tokens / statistics.median(v) for k, v in times.items()}
    flops_6n = 6 * n_nonembed * tps["ours"]
    attn_flops = 12 * args.layers * args.seq * args.d_model * tps["ours"] / 2  # causal: half the scores
    result = {
        "config": vars(args) | {"threads_used": torch.get_num_threads(), "d_ff": cfg.d_ff},
        "non_embedding_params": n_nonembed,
        "tokens_per_s": tps,
        "speedup_vs_transformers": tps["ours"] / tps["transformers"],
        "matmul_peak_gflops": peak,
        "model_gflops_6N": flops_6n / 1e9,
        "mfu_6N": flops_6n / (peak * 1e9),
        "mfu_6N_plus_attention": (flops_6n + attn_flops) / (peak * 1e9),
        "step_s_median": {k: statistics.median(v) for k, v in times.items()},
        "step_s_all": times,
        # CPU seconds per step (all threads); less sensitive to other processes on a shared machine
        "cpu_s_median": {k: statistics.median(v) for k, v in cpu.items()},
        "speedup_vs_transformers_cpu_time": statistics.median(cpu["transformers"]) / statistics.median(cpu["ours"]),
    }
    print(f"threads={torch.get_num_threads()} d_model={args.d_model} layers={args.layers} seq={args.seq} "
          f"batch={args.batch} vocab={args.vocab} N_nonembed={n_nonembed / 1e6:.2f}M")
    for k in steps:
        print(f"  {k:13s} {tps[k]:9.0f} tokens/s  (median step {statistics.median(times[k]):.3f}s, "
              f"all {[round(t, 3) for t in times[k]]})")
    print(f"  speedup vs transformers: {result['speedup_vs_transformers']:.3f}x wall  (target >= 1.1x); "
          f"{result['speedup_vs_transformers_cpu_time']:.3f}x in CPU time")
    print(f"  fp32 matmul peak: {peak:.1f} GFLOP/s; model: {flops_6n / 1e9:.1f} GFLOP/s")
    print(f"  MFU (6N): {result['mfu_6N']:.1%}  (target >= 45%);  with attention FLOPs: "
          f"{result['mfu_6N_plus_attention']:.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
