"""Embedding speed and accuracy of every encoder variant, measured side by side in one run.

Speed: the same 3,000 BANKING77 train texts (random, seed 0) are embedded by sentence-transformers
``encode()``, labelloop's PyTorch path, every ONNX Runtime variant, and ``embed()`` with labelloop's defaults
into a cold cache (what ``labelloop embed`` does). Sides run interleaved (order rotated every repeat) on the
same threads; wall time and this process's CPU time per text are kept per repeat, the median reported. The
machine is shared, so CPU ms per text is the steadier figure.

Accuracy: every variant embeds all of BANKING77 (train + test) and the demo tickets; logistic regression
(C=10, labelloop's head) on raw vectors, full train → test; cosine of each text's vector to PyTorch fp32.
Optionally labels-to-98 % of the label-efficiency simulation (margin-kmeans, smoothed features).

    python benchmarks/embedding_speed.py [--repeats 3] [--n 3000] [--seeds 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
from _banking77 import RESULTS, banking77_paths

from labelloop.data import demo_paths, load_pool
from labelloop.embeddings import Encoder, default_cache_dir, default_model_path, embed
from labelloop.encoders import DEFAULT_BACKEND, DEFAULT_PRECISION, available_cpus
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.simulate import full_pool, labels_to_reach, simulate

VARIANTS = {  # label -> Encoder settings (ST is added apart)
    "labelloop torch fp32": {"backend": "torch", "precision": "fp32"},
    "onnx fp32": {"backend": "onnx", "precision": "fp32"},
    "onnx int8 per-channel": {"backend": "onnx", "precision": "int8"},
    "onnx int8 per-tensor": {"backend": "onnx", "precision": "int8-per-tensor"},
}
ST = "sentence-transformers encode()"
DEFAULT = "labelloop embed() defaults, cold cache"
# Rows timed without vectors of their own take the accuracy of the graph they run (the default's).
DEFAULT_VARIANT = f"onnx {DEFAULT_PRECISION}" if DEFAULT_PRECISION == "fp32" else "onnx int8 per-channel"


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=3000, help="texts in the speed comparison")
    parser.add_argument("--threads", type=int, default=available_cpus())
    parser.add_argument("--seeds", default="0", help="label-efficiency seeds ('' = skip)")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)  # for sentence-transformers, which uses torch's global setting
    train_path, test_path = banking77_paths()
    train = load_pool(train_path, label_column="category", require_labels=True)
    test = load_pool(test_path, label_column="category", require_labels=True)
    rows = np.random.default_rng(0).permutation(len(train))[: args.n]
    texts = [train.texts[i] for i in rows]

    cache_root = default_cache_dir()
    encoders = {name: Encoder(threads=args.threads, export_dir=cache_root / "onnx", **kw)
                for name, kw in VARIANTS.items()}
    st = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    st_encode = lambda ts: st.encode(ts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)  # noqa: E731
    for enc in encoders.values():  # export (once, cached) and warm up outside the timings
        enc.encode(texts[:64])
    st_encode(texts[:64])

    def default_cold() -> None:
        with tempfile.TemporaryDirectory() as tmp:  # a fresh cache: hashing, encoding and shard writes count
            embed(texts, Encoder(threads=args.threads, export_dir=cache_root / "onnx"), tmp)

    sides: dict[str, Callable[[], object]] = {ST: lambda: st_encode(texts), DEFAULT: default_cold}
    sides |= {name: (lambda e=enc: e.encode(texts)) for name, enc in encoders.items()}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(args.repeats):
        for name in names[rep % len(names):] + names[: rep % len(names)]:
            times[name].append(timed(sides[name]))
            print(f"repeat {rep}: {name}: {times[name][-1][0]:.2f} s wall, {times[name][-1][1]:.2f} s CPU")
    speed = {name: {"wall_s": [w for w, _ in t], "cpu_s": [c for _, c in t],
                    "texts_per_s": args.n / statistics.median(w for w, _ in t),
                    "cpu_ms_per_text": 1000 * statistics.median(c for _, c in t) / args.n}
             for name, t in times.items()}
    for s in speed.values():
        s["wall_ratio_vs_st"] = statistics.median(s["wall_s"]) / statistics.median(speed[ST]["wall_s"])
        s["cpu_ratio_vs_st"] = s["cpu_ms_per_text"] / speed[ST]["cpu_ms_per_text"]
        # per repeat, side by side: the bar's figure (each repeat's pair ran back to back)
        pairs = zip(s["wall_s"], speed[ST]["wall_s"], strict=True)
        s["wall_ratio_vs_st_per_repeat"] = [a / b for a, b in pairs]

    # Accuracy: every variant on all of BANKING77 and the demo tickets.
    classes = train.label_set
    y, yt = train.label_array(classes), test.label_array(classes)
    demo_train, demo_test = (load_pool(p, id_column="id", require_labels=True) for p in demo_paths())
    dclasses = demo_train.label_set
    dy, dyt = demo_train.label_array(dclasses), demo_test.label_array(dclasses)
    vectors: dict[str, tuple[np.ndarray, ...]] = {}
    for name, enc in encoders.items():
        vectors[name] = tuple(embed(p.texts, enc, cache_root, progress=True)
                              for p in (train, test, demo_train, demo_test))
    vectors[ST] = tuple(st_encode(p.texts) for p in (train, test, demo_train, demo_test))
    ref = vectors["labelloop torch fp32"]
    accuracy: dict[str, dict] = {}
    for name, (X, Xt, D, Dt) in vectors.items():
        cos = np.concatenate([np.sum(a * b, axis=1) for a, b in zip((X, Xt, D, Dt), ref, strict=True)])
        accuracy[name] = {
            "cosine_to_torch_fp32_mean": float(cos.mean()), "cosine_to_torch_fp32_min": float(cos.min()),
            "banking77_lr_c10_test_accuracy": full_pool(X, y, Xt, yt, len(classes), C=10.0)["accuracy"],
            "demo_lr_c10_test_accuracy": full_pool(D, dy, Dt, dyt, len(dclasses), C=10.0)["accuracy"],
        }
        print(name, accuracy[name])

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for name in ("labelloop torch fp32", DEFAULT_VARIANT) if seeds else ():
        X, Xt = vectors[name][:2]
        F, Ft = DEFAULT_SMOOTHING(X), DEFAULT_SMOOTHING(Xt, X)
        ceiling = full_pool(F, y, Ft, yt, len(classes))
        reached = []
        for seed in seeds:
            run = simulate(F, y, Ft, yt, len(classes), initial=100, batch_size=100, budget=2000, seed=seed,
                           ceiling=ceiling)
            reached.append(labels_to_reach(run, 0.98))
        accuracy[name]["label_efficiency"] = {"seeds": seeds, "labels_to_98pct": reached,
                                              "full_pool_smoothed_accuracy": ceiling["accuracy"]}
        print(name, accuracy[name]["label_efficiency"])

    result = {
        "n_speed_texts": args.n, "repeats": args.repeats, "threads": args.threads,
        "machine": f"{platform.machine()}, {available_cpus()} cores (shared), "
                   f"{'avx512_vnni ' if 'avx512_vnni' in open('/proc/cpuinfo').read() else ''}",
        "default": f"{DEFAULT_BACKEND} {DEFAULT_PRECISION}", "speed": speed, "accuracy": accuracy,
        "versions": {m: __import__("importlib.metadata").metadata.version(m)
                     for m in ("torch", "onnxruntime", "onnx", "sentence-transformers")},
        "pid_cpu_count": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embedding_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"| variant ({args.n:,} BANKING77 texts, {args.threads} threads) | texts/s | CPU ms/text | "
        "wall vs ST | cosine to torch fp32 (mean / min) | BANKING77 LR C=10 | demo LR C=10 | "
        "labels to 98 % |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, s in speed.items():
        a = accuracy.get(name) or accuracy[DEFAULT_VARIANT]
        le = a.get("label_efficiency", {}).get("labels_to_98pct", "—")
        lines.append(
            f"| {name} | {s['texts_per_s']:.0f} | {s['cpu_ms_per_text']:.2f} | {s['wall_ratio_vs_st']:.2f} | "
            f"{a['cosine_to_torch_fp32_mean']:.4f} / {a['cosine_to_torch_fp32_min']:.4f} | "
            f"{a['banking77_lr_c10_test_accuracy']:.4f} | {a['demo_lr_c10_test_accuracy']:.4f} | {le} |")
    lines += ["", f"Default: **{result['default']}**. Medians over {args.repeats} interleaved repeats on "
              f"{result['machine'].strip()}; rows without their own accuracy (the defaults) "
              f"run the default graph ({DEFAULT_VARIANT}). Versions: "
              + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + "."]
    (RESULTS / "embedding_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
