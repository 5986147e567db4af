"""PyTorch and ONNX Runtime timing for recur's peer comparison harness (bench/peers).

    python peers.py OUT [--systems torch,ort] [--threads 1] [--lengths 18,112] [--seconds 2]
                        [--min-iters 20] [--warmup-seconds 0.2] [--warmup-iters 20]
                        [--atol 1e-4] [--samples]

OUT is a directory written by make_model.py. Systems:
  torch  the saved module OUT/esc.pt (GRU + linear head), torch.set_num_threads(threads),
         one interop thread, called under torch.inference_mode()
  ort    ONNX Runtime on OUT/esc.onnx, CPU provider, intra_op_num_threads=threads,
         inter_op_num_threads=1, sequential execution, default graph optimizations

Before timing, each system's output for check.npz's x{T} is compared with PyTorch's y{T}
(recorded by make_model.py) with |diff| <= atol; a system whose output differs is not timed
(its entry gets an "error" and the exit status is 2).

Protocol (the same for every system of the harness, and the one `recur bench` uses): per length,
warm-up calls until at least warmup-seconds have passed and warmup-iters calls were made, then
single calls each timed on its own with time.perf_counter until at least `seconds` have passed
and min-iters calls were timed. Median and p95 by nearest rank (the sample of 1-based rank
ceil(p/100 * n); the median is the lower middle sample for an even count). One call is one
forward pass from the prepared input to the returned output (numpy array for ORT, tensor for
PyTorch), including the Python call overhead.

Prints one JSON object on stdout. Run one system per process when timing with more than one
thread, so that one runtime's idle worker threads cannot disturb the other's timing (the
harness's compare.py does this).
"""
import argparse, json, math, os, platform, sys, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def percentile(sorted_samples, p):
    """Nearest-rank percentile of an ascending list."""
    n = len(sorted_samples)
    rank = math.ceil(p * n / 100.0)
    return sorted_samples[min(max(rank, 1), n) - 1]


def measure(fn, a):
    """Warm-up, then timed single calls; returns the samples in milliseconds, in order."""
    t0, n = time.perf_counter(), 0
    while n < a.warmup_iters or time.perf_counter() - t0 < a.warmup_seconds:
        fn()
        n += 1
    samples = []
    clock = time.perf_counter
    m0 = clock()
    while len(samples) < a.min_iters or clock() - m0 < a.seconds:
        c0 = clock()
        fn()
        samples.append((clock() - c0) * 1e3)
    return samples


def summarize(samples, keep):
    s = sorted(samples)
    out = {"median_ms": percentile(s, 50), "p95_ms": percentile(s, 95), "min_ms": s[0],
           "mean_ms": sum(s) / len(s), "iterations": len(s)}
    if keep:
        out["samples_ms"] = samples
    return out


def make_torch(a):
    import torch
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set (only possible before the first parallel work)
    sys.path.insert(0, HERE)
    import __main__
    from make_model import Esc  # esc.pt pickles the class as __main__.Esc
    __main__.Esc = Esc
    m = torch.load(os.path.join(a.model, "esc.pt"), weights_only=False).eval()
    info = {"version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "backend": "mkldnn" if torch.backends.mkldnn.is_available() else "native",
            "mkl": torch.backends.mkl.is_available()}

    def prepare(x):
        xt = torch.from_numpy(x)

        def call():
            with torch.inference_mode():
                return m(xt)
        return call, lambda: call().numpy()
    return info, prepare


def make_ort(a):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.path.join(a.model, "esc.onnx"), so,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    info = {"version": ort.__version__, "threads": a.threads, "inter_op_threads": 1,
            "execution_mode": "sequential", "providers": sess.get_providers()}

    def prepare(x):
        feed = {name: np.ascontiguousarray(x)}

        def call():
            return sess.run(None, feed)[0]
        return call, call
    return info, prepare


MAKERS = {"torch": make_torch, "ort": make_ort}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="directory written by make_model.py")
    ap.add_argument("--systems", default="torch,ort")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lengths", default="18,112")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--min-iters", type=int, default=20)
    ap.add_argument("--warmup-seconds", type=float, default=0.2)
    ap.add_argument("--warmup-iters", type=int, default=20)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--samples", action="store_true", help="include every timed call")
    a = ap.parse_args()
    if a.threads < 1 or a.min_iters < 1:
        ap.error("--threads and --min-iters must be >= 1")
    lengths = [int(t) for t in a.lengths.split(",")]
    check = np.load(os.path.join(a.model, "check.npz"))

    result = {"python": platform.python_version(), "numpy": np.__version__, "systems": {}}
    status = 0
    for system in a.systems.split(","):
        if system not in MAKERS:
            ap.error(f"unknown system {system!r} (known: {', '.join(MAKERS)})")
        entry = {"lengths": {}}
        result["systems"][system] = entry
        try:
            info, prepare = MAKERS[system](a)
        except Exception as e:  # a missing package or a model it cannot load
            entry["error"] = f"{type(e).__name__}: {e}"
            status = max(status, 1)
            continue
        entry.update(info)
        for t in lengths:
            x, y_ref = check[f"x{t}"], check[f"y{t}"]
            call, output = prepare(x)
            y = np.asarray(output())
            err = float(np.max(np.abs(y.reshape(y_ref.shape) - y_ref))) \
                if y.size == y_ref.size else float("inf")
            if not err <= a.atol:
                entry["lengths"][str(t)] = {
                    "max_abs_err": err,
                    "error": f"output differs from PyTorch's reference by {err} > {a.atol}"}
                print(f"peers.py: {system} T={t}: output differs by {err}; not timed",
                      file=sys.stderr)
                status = 2
                continue
            stats = summarize(measure(call, a), a.samples)
            stats["max_abs_err"] = err
            entry["lengths"][str(t)] = stats
    json.dump(result, sys.stdout)
    print()
    sys.exit(status)


if __name__ == "__main__":
    main()
