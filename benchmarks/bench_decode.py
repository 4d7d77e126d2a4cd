"""Greedy decoding with our KV cache vs ``transformers`` ``generate(use_cache=True)``, same weights.

Both decode exactly ``--new`` tokens greedily after the same prompt, on one torch thread (the
least noisy setting on a shared machine). Rounds alternate between the two, so a burst of
background load hits both alike; the fastest round of each counts. The model is the pipeline's
base LM (``models/base/model.pt``) when it exists, else a freshly initialised llama-like
mini-former of the same shape (decoding speed does not depend on the weights' values, only on
their shapes; greedy output of an untrained model is still compared token for token).

Usage:  python benchmarks/bench_decode.py [--model models/base/model.pt] [--new 256 --rounds 5]
Target (issue: Decoding): ours >= 1.5x generate's tokens/s. Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from nlpcurriculum.decoding.kv_decode import greedy_cached  # noqa: E402
from nlpcurriculum.experiments.kv_cache import hf_generate_timing  # noqa: E402
from nlpcurriculum.models import build_model, llama_like, load_model  # noqa: E402
from nlpcurriculum.models.hf_interop import to_hf_llama  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/base/model.pt")
    p.add_argument("--new", type=int, default=256, help="new tokens per generation")
    p.add_argument("--prompt", type=int, default=8, help="prompt tokens")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if Path(args.model).exists():
        model, source = load_model(args.model), args.model
    else:  # the shape of the pretrain model (params/pipeline.yaml), untrained
        model = build_model(llama_like("small", vocab_size=4096, max_seq_len=128)).eval()
        source = "untrained llama_like('small', vocab 4096)"
    prompt = torch.randint(0, model.config.vocab_size, (args.prompt,)).tolist()
    hf_ids, t_hf, t_ours = hf_generate_timing(to_hf_llama(model).eval(), model, prompt, args.new,
                                              args.rounds)
    same = hf_ids == greedy_cached(model, prompt, args.new)
    result = {"ours_tokens_per_s": args.new / t_ours, "generate_tokens_per_s": args.new / t_hf,
              "ratio": t_hf / t_ours, "same_tokens": same}
    print(f"model: {source}; prompt {args.prompt}, {args.new} new tokens, {args.threads} thread(s), "
          f"best of {args.rounds} alternating rounds")
    print(f"  ours (KV cache)          {result['ours_tokens_per_s']:7.1f} tokens/s")
    print(f"  generate(use_cache=True) {result['generate_tokens_per_s']:7.1f} tokens/s")
    print(f"  ratio {result['ratio']:.3f}x (target >= 1.5x); same greedy tokens: {same}")
    return result


if __name__ == "__main__":
    main()
