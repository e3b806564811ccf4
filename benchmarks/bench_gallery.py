"""Gallery search latency for 10^3 .. 10^5 (10^6 with --large) entries: exact numpy, and faiss if installed
(exact flat index; approximate HNSW with --hnsw, with its recall against the exact search); with
--saves, the cost of a save (a transaction) at the same sizes.

Each query is one person crop's embedding searched against one modality's entries (top-k cosine),
as the pipeline does per batch. Reported: median / p90 / p99 milliseconds per search call for a
batch of ``--queries`` embeddings, over ``--repeats`` calls after one warm-up call.

Saves (``--saves``): one writer adds one entry and saves, as the pipeline's periodic flush does.
"own" is the usual case (nobody else saved since this writer's last save: its view is written as
it is); "merged" is the case where another process saved in between (the folder is read again and
this writer's change merged into it). The two are timed alternately, ``--repeats`` times each.

    python benchmarks/bench_gallery.py                     # 1e3, 1e4, 1e5
    python benchmarks/bench_gallery.py --large --json out.json   # adds 1e6 (about 1 GB for D=256)
    python benchmarks/bench_gallery.py --saves --sizes 1000 10000 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _gallery(n: int, dim: int, rng: np.random.Generator):
    from spot_edge.gallery import Gallery

    g = Gallery(embedding_dim=dim)
    chunk = 100_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        g.add(rng.standard_normal((m, dim), dtype=np.float32), identities=[f"p{start + i}" for i in range(m)],
              modality="visible", camera="cam1", timestamps=0.0)
    return g


def bench(sizes, dim: int = 256, queries: int = 8, k: int = 5, repeats: int = 20, seed: int = 0,
          hnsw: bool = False) -> list[dict]:
    from spot_edge.gallery import faiss_available

    rng = np.random.default_rng(seed)
    backends = ["numpy"] + (["faiss"] if faiss_available() else []) + (["hnsw"] if hnsw and faiss_available() else [])
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        g = _gallery(n, dim, rng)
        build_s = time.perf_counter() - t0
        q = rng.standard_normal((queries, dim), dtype=np.float32)
        exact = None
        for backend in backends:
            g.faiss_index = "hnsw" if backend == "hnsw" else "flat"  # (re)builds the index on first search
            search_backend = "numpy" if backend == "numpy" else "faiss"
            t1 = time.perf_counter()
            found = g.search(q, "infrared", k=k, backend=search_backend)  # warm-up (faiss builds its index here)
            first_ms = (time.perf_counter() - t1) * 1e3
            ids = [[m.entry.entry_id for m in r] for r in found]
            exact = exact if exact is not None else ids
            recall = float(np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(ids, exact)]))
            times = []
            for _ in range(repeats):
                t1 = time.perf_counter()
                g.search(q, "infrared", k=k, backend=search_backend)
                times.append(time.perf_counter() - t1)
            ms = np.asarray(times) * 1e3
            row = {"entries": n, "dim": dim, "queries": queries, "k": k, "backend": backend,
                   "p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                   "p99_ms": float(np.percentile(ms, 99)), "first_call_ms": first_ms,
                   "per_query_ms": float(np.median(ms)) / queries, "gallery_build_s": build_s,
                   "recall_at_k": recall}
            rows.append(row)
            print(f"{n:>9,d} entries  {backend:<6}  p50 {row['p50_ms']:9.3f} ms  p90 {row['p90_ms']:9.3f}  "
                  f"p99 {row['p99_ms']:9.3f}  ({row['per_query_ms']:.3f} ms/query, first call "
                  f"{first_ms:.1f} ms, recall@{k} {recall:.3f})", flush=True)
        del g
    return rows


def bench_saves(sizes, dim: int = 256, repeats: int = 20, seed: int = 0) -> list[dict]:
    """Median / p90 milliseconds of one save after adding one entry: "own" vs "merged" (see above)."""
    import tempfile
    from pathlib import Path

    from spot_edge.gallery import Gallery

    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "g"
            writer = _gallery(n, dim, rng)
            writer.save(folder)
            other = Gallery.open(folder)
            times: dict[str, list[float]] = {"own": [], "merged": []}
            one = rng.standard_normal((1, dim), dtype=np.float32)
            for _ in range(repeats):
                for case in ("own", "merged"):  # alternately
                    if case == "merged":
                        other.add(one, identities="other", modality="infrared")
                        other.save()
                    writer.add(one, identities="mine", modality="visible")
                    t0 = time.perf_counter()
                    writer.save()
                    times[case].append(time.perf_counter() - t0)
            for case, values in times.items():
                ms = np.asarray(values) * 1e3
                row = {"entries": n, "dim": dim, "case": case, "p50_ms": float(np.median(ms)),
                       "p90_ms": float(np.percentile(ms, 90))}
                rows.append(row)
                print(f"{n:>9,d} entries  save ({case:<6})  p50 {row['p50_ms']:9.2f} ms  p90 {row['p90_ms']:9.2f} ms",
                      flush=True)
            assert len(Gallery.load(folder)) == n + 3 * repeats  # nothing lost on the way
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="also 10^6 entries (memory: 4 * dim MB)")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit gallery sizes (overrides the default)")
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension (default 256)")
    parser.add_argument("--queries", type=int, default=8, help="queries per search call")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hnsw", action="store_true", help="also faiss HNSW (approximate; slow to build)")
    parser.add_argument("--saves", action="store_true", help="time saves (transactions) instead of searches")
    parser.add_argument("--threads", type=int, default=None, help="limit numpy/faiss threads (e.g. 2)")
    parser.add_argument("--json", dest="json_out", help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        try:
            import faiss

            faiss.omp_set_num_threads(args.threads)
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    sizes = args.sizes or ([10**3, 10**4, 10**5] + ([10**6] if args.large else []))
    if args.saves:
        rows = bench_saves(sizes, args.dim, args.repeats)
    else:
        rows = bench(sizes, args.dim, args.queries, args.k, args.repeats, hnsw=args.hnsw)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
