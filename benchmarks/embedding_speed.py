"""Embedding throughput: labelloop's encoder vs sentence-transformers ``encode()`` on the same model.

Both embed the 13,083 BANKING77 texts (train + test) on the CPU, cold, with the same
batch size; then labelloop is run again over a warm cache. Writes
``results/embedding_speed.{json,md}``.

    python benchmarks/embedding_speed.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np

from _banking77 import RESULTS, banking77_paths
from labelloop.data import load_pool
from labelloop.embeddings import Encoder, default_model_path, embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per side (best is kept)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    train, test = banking77_paths()
    texts = load_pool(train, label_column="category").texts + load_pool(test, label_column="category").texts
    encoder = Encoder(batch_size=args.batch_size)
    st = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    # Warm both up (weights paged in, kernels chosen) so neither pays first-call costs.
    encoder.encode(texts[:64])
    st.encode(texts[:64], batch_size=args.batch_size)

    ours, theirs = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            mine = embed(texts, encoder, cache)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            warm_vectors = embed(texts, encoder, cache)
            warm = time.perf_counter() - t0
            assert np.array_equal(mine, warm_vectors)
        t0 = time.perf_counter()
        ref = st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        theirs.append(time.perf_counter() - t0)
    agreement = float(np.min(np.sum(mine * ref, axis=1)))

    result = {
        "n_texts": len(texts),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "labelloop_seconds": min(ours),
        "sentence_transformers_seconds": min(theirs),
        "ratio_labelloop_over_st": min(ours) / min(theirs),
        "warm_cache_seconds": warm,
        "labelloop_texts_per_second": len(texts) / min(ours),
        "min_cosine_vs_sentence_transformers": agreement,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embedding_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    table = "\n".join([
        "| embedding 13,083 BANKING77 texts | seconds | texts/s |",
        "|---|---:|---:|",
        f"| labelloop `embed()` (cold cache) | {min(ours):.1f} | {len(texts) / min(ours):.0f} |",
        f"| sentence-transformers `encode()` | {min(theirs):.1f} | {len(texts) / min(theirs):.0f} |",
        f"| labelloop `embed()` (warm cache) | {warm:.2f} | — |",
        "",
        f"Ratio labelloop / sentence-transformers: **{result['ratio_labelloop_over_st']:.2f}**; "
        f"lowest cosine between the two sides' vectors: {agreement:.6f}. "
        f"Batch size {args.batch_size}, {result['torch_threads']} torch threads, {result['machine']}.",
    ])
    (RESULTS / "embedding_speed.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
