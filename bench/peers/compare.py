"""Runs recur, PyTorch, ONNX Runtime and tract on the same weights in one run and prints a
Markdown table (the driver behind run.sh; see README.md).

    python compare.py --dir OUT --recur BIN [--tract BIN | --tract-error MSG] [--threads 1]
                      [--seconds 2] [--rounds 3] [--lengths 18,112]

OUT holds make_model.py's files and OUT/recur (the GRU imported with `recur import-torch`).
Writes OUT/peers.json (every number, including every timed call) and OUT/peers.md (the table).

Rows: recur f32, f16 and int8 at min(threads, 2) threads (recur splits the two directions of a
bidirectional layer over at most 2 threads), recur f32 at 1 thread (the reference of the ratio
column) and, when threads is 1, recur f32 at 2 threads as an extra row; PyTorch and ONNX
Runtime at `threads`; tract (single-threaded) at 1.

Each system measures itself in its own process with the same protocol (warm-up >= 0.2 s and
>= 20 calls, then single calls each timed on its own, nearest-rank median and p95). The time is
split into `rounds` rounds; in each round every row runs once for seconds/rounds seconds (and at
least ceil(min-iters/rounds) calls) and the order of the rows rotates from round to round, so
that slow drifts of the machine (another process, frequency) hit all systems alike. The
statistics are computed over the pooled samples of all rounds.
"""
import argparse, json, math, os, platform, subprocess, sys, tempfile, time
from datetime import datetime, timezone

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MACS_PER_STEP = 442_368       # both layers, both directions (shared/docs/anchors.md)
PEAK_GFLOPS_PER_CORE = 80.0   # single-precision FMA peak per core (anchors.md: sgemm measured 81)


def floor_ms(t, cores):
    """The f32 compute floor: 2 * MACs / (peak per core * cores)."""
    return 2 * MACS_PER_STEP * t / (PEAK_GFLOPS_PER_CORE * 1e9 * cores) * 1e3


def percentile(sorted_samples, p):
    n = len(sorted_samples)
    rank = math.ceil(p * n / 100.0)
    return sorted_samples[min(max(rank, 1), n) - 1]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_json(cmd):
    """Runs cmd, returns (parsed JSON of its stdout or None, error message or None)."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = None
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else None
    except json.JSONDecodeError:
        pass
    if p.returncode != 0 or out is None:
        msg = (p.stderr.strip() or p.stdout.strip() or f"exit status {p.returncode}")
        return out, f"{' '.join(cmd[:3])}...: {msg.splitlines()[-1] if msg else ''}"[:500]
    return out, None


# How far each recur precision may be from PyTorch's f32 output (f32: --atol). The reduced
# precisions quantize the weights (and, for int8, the activations); recur's own tests bound
# them against its f32 output (tests/precision.rs).
REDUCED_ATOL = {"f16": 1e-3, "int8": 2e-2}


def check_recur(a, lengths, precision="f32"):
    """recur (best kernels, weights in `precision`) on check.npz's inputs through `recur run`,
    compared with PyTorch's final states h{T} and, with the head applied in numpy, its outputs
    y{T}, within --atol for f32 and REDUCED_ATOL otherwise."""
    atol = a.atol if precision == "f32" else REDUCED_ATOL[precision]
    check = np.load(os.path.join(a.dir, "check.npz"))
    head = None
    try:
        from safetensors.numpy import load_file
        head = load_file(os.path.join(a.dir, "head.safetensors"))
    except Exception:
        pass
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in lengths:
            xp = os.path.join(tmp, f"x{t}.npy")
            np.save(xp, check[f"x{t}"])
            od = os.path.join(tmp, f"out{t}")
            p = subprocess.run([a.recur, "run", "--model", os.path.join(a.dir, "recur"),
                                "--input", xp, "--out-dir", od, "--precision", precision],
                               capture_output=True, text=True)
            if p.returncode != 0:
                res[str(t)] = {"error": f"recur run failed: {p.stderr.strip()[-300:]}"}
                continue
            h_n = np.load(os.path.join(od, "h_n.npy"))          # [layers*dirs, 1, 128]
            h = np.concatenate([h_n[-2], h_n[-1]], axis=1)      # top layer: forward, backward
            r = {"max_abs_err_h": float(np.max(np.abs(h - check[f"h{t}"])))}
            if head is not None:
                y = h @ head["weight"].T + head["bias"]
                r["max_abs_err_y"] = float(np.max(np.abs(y - check[f"y{t}"])))
            errs = [v for k, v in r.items() if k.startswith("max_abs_err")]
            if not max(errs) <= atol:
                r["error"] = (f"recur {precision}'s output differs from PyTorch by {max(errs)} "
                              f"> {atol}")
            res[str(t)] = r
    return res


def worst_err(checked):
    """The largest difference from PyTorch over the lengths that passed (the output's when
    the head was applied, else the final states')."""
    return max((v.get("max_abs_err_y", v.get("max_abs_err_h", 0.0))
                for v in checked.values() if "error" not in v), default=float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--recur", required=True, help="path of the recur binary")
    ap.add_argument("--tract", help="path of the peers-tract binary")
    ap.add_argument("--tract-error", help="why tract is not available (shown in the table)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for peers.py")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lengths", default="18,112")
    ap.add_argument("--atol", type=float, default=1e-4)
    a = ap.parse_args()
    if a.threads < 1 or a.rounds < 1 or a.seconds < 0:
        ap.error("--threads and --rounds must be >= 1, --seconds >= 0")
    lengths = [int(t) for t in a.lengths.split(",")]
    ls = ",".join(map(str, lengths))
    per_round_s = a.seconds / a.rounds
    # `recur bench` has a fixed minimum of 20 timed calls (and 0.2 s / 20 calls of warm-up) and
    # no option to change it, so every system gets the same minimum per round.
    per_round_n = "20"
    common = ["--seconds", repr(per_round_s), "--lengths", ls]
    peer_common = common + ["--min-iters", per_round_n]

    started = datetime.now(timezone.utc)
    meta = {"date_utc": started.isoformat(timespec="seconds"), "host": platform.node(),
            "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "loadavg_start": loadavg(),
            "args": vars(a), "protocol": {
                "warmup": ">= 0.2 s and >= 20 calls per process and length",
                "timed": f">= {a.seconds} s per row and length, in {a.rounds} rounds of "
                         f">= {per_round_s:.3g} s and >= {per_round_n} calls",
                "stats": "nearest-rank median and p95 of the pooled samples"},
            "floor": {"macs_per_step": MACS_PER_STEP, "peak_gflops_per_core": PEAK_GFLOPS_PER_CORE,
                      "ms_1_core": {str(t): floor_ms(t, 1) for t in lengths}}}
    rv = subprocess.run([a.recur, "--version"], capture_output=True, text=True).stdout.split()
    recur_version = rv[-1] if rv else "?"

    # ---- rows ---------------------------------------------------------------------------
    rt = min(a.threads, 2)
    rows = []

    def recur_row(prec, threads, note=""):
        cmd = [a.recur, "bench", "--model", os.path.join(a.dir, "recur"), "--json", "--samples",
               "--threads", str(threads), "--precision", prec] + common
        rows.append({"system": "recur", "version": recur_version, "precision": prec,
                     "threads": threads, "cmd": cmd, "note": note,
                     "pick": lambda j: j})

    recur_row("f32", 1)
    if rt != 1:
        recur_row("f32", rt)
    recur_row("f16", rt)
    recur_row("int8", rt)
    if rt == 1:
        recur_row("f32", 2, "extra row: 2 threads")
    peers_cmd = [a.python, os.path.join(HERE, "peers.py"), a.dir, "--threads", str(a.threads),
                 "--samples", "--atol", repr(a.atol)] + peer_common
    for sysname, label in (("torch", "PyTorch"), ("ort", "ONNX Runtime")):
        rows.append({"system": label, "precision": "f32", "threads": a.threads,
                     "cmd": peers_cmd + ["--systems", sysname],
                     "pick": (lambda s: lambda j: j["systems"][s])(sysname)})
    if a.tract:
        rows.append({"system": "tract", "precision": "f32", "threads": 1,
                     "cmd": [a.tract, "--model", a.dir, "--samples", "--atol", repr(a.atol)]
                     + peer_common, "pick": lambda j: j})
    else:
        rows.append({"system": "tract", "precision": "f32", "threads": 1,
                     "error": a.tract_error or "not built"})
    for r in rows:
        r.setdefault("samples", {str(t): [] for t in lengths})
        r.setdefault("round_medians", {str(t): [] for t in lengths})

    # ---- checks ---------------------------------------------------------------------------
    recur_check = {}
    for prec in ("f32", "f16", "int8"):
        print(f"checking recur {prec} against PyTorch (recur run) ...", file=sys.stderr)
        recur_check[prec] = check_recur(a, lengths, prec)
    for r in rows:
        if r["system"] == "recur":
            checked = recur_check[r["precision"]]
            bad = [v["error"] for v in checked.values() if "error" in v]
            if bad:
                r["error"] = bad[0]
            r["check"] = (f"{r['precision']} output checked with `recur run --precision "
                          f"{r['precision']}`: max |diff| {worst_err(checked):.2g}")

    # ---- rounds ---------------------------------------------------------------------------
    live = [r for r in rows if "error" not in r]
    for k in range(a.rounds):
        order = live[k % len(live):] + live[:k % len(live)] if live else []
        for r in order:
            if "error" in r:
                continue
            label = f"{r['system']} {r['precision']} {r['threads']}t"
            print(f"round {k + 1}/{a.rounds}: {label}", file=sys.stderr)
            j, err = run_json(r["cmd"])
            try:
                sub = r["pick"](j) if j is not None else None
            except (KeyError, TypeError):
                sub = None
            if sub is not None and "error" in sub:
                err = sub["error"]
            if sub is not None:
                for key in ("version", "interop_threads", "providers"):
                    if key in sub:
                        r[key] = sub[key]
                for t in map(str, lengths):
                    lt = sub.get("lengths", {}).get(t, {})
                    if "max_abs_err" in lt:
                        r.setdefault("max_abs_err", {})[t] = lt["max_abs_err"]
                    if "error" in lt and not err:
                        err = f"T={t}: {lt['error']}"
                    if not err:
                        r["samples"][t].extend(lt["samples_ms"])
                        r["round_medians"][t].append(lt["median_ms"])
            if err:
                r["error"] = err
                print(f"  {label}: {err}", file=sys.stderr)
    meta["loadavg_end"] = loadavg()
    meta["wall_s"] = round(time.time() - started.timestamp(), 1)

    # ---- statistics ------------------------------------------------------------------------
    for r in rows:
        r["stats"] = {}
        if "error" in r:
            continue
        for t in map(str, lengths):
            s = sorted(r["samples"][t])
            r["stats"][t] = {"median_ms": percentile(s, 50), "p95_ms": percentile(s, 95),
                             "min_ms": s[0], "mean_ms": sum(s) / len(s), "iterations": len(s)}
    ref = rows[0]  # recur f32, 1 thread
    for r in rows:
        if "error" in r:
            continue
        r["floor_fraction"] = {t: floor_ms(int(t), r["threads"]) / r["stats"][t]["median_ms"]
                               for t in r["stats"]}
        if "error" not in ref:
            r["vs_recur_f32_1t"] = {t: r["stats"][t]["median_ms"] / ref["stats"][t]["median_ms"]
                                    for t in r["stats"]}

    # ---- table ------------------------------------------------------------------------------
    def ms(v):
        return f"{v:.3f}" if v < 1 else f"{v:.2f}"

    head = ["system", "version", "precision", "threads"]
    for t in lengths:
        head += [f"T={t} median ms", f"T={t} p95 ms"]
    slash = " / ".join(map(str, lengths))
    head += [f"time ÷ recur f32 1t ({slash})", f"of f32 floor ({slash})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (2 * len(lengths) + 2)]
    for r in rows:
        cells = [r["system"], r.get("version", "?"), r["precision"], str(r["threads"])]
        if "error" in r:
            cells += ["–"] * (2 * len(lengths) + 2)
        else:
            for t in map(str, lengths):
                cells += [ms(r["stats"][t]["median_ms"]), ms(r["stats"][t]["p95_ms"])]
            cells.append(" / ".join(f"{r['vs_recur_f32_1t'][t]:.2f}×" for t in map(str, lengths))
                         if "vs_recur_f32_1t" in r else "–")
            cells.append(" / ".join(f"{100 * r['floor_fraction'][t]:.0f}%"
                                    for t in map(str, lengths)))
        lines.append("| " + " | ".join(cells) + " |")
    floors = ", ".join(f"{floor_ms(t, 1):.3f} ms at T={t}" for t in lengths)
    notes = [
        "",
        f"Batch 1, {a.seconds:g} s per row and length in {a.rounds} interleaved rounds; "
        f"{meta['cpu']}, {os.cpu_count()} logical CPUs; load average "
        f"{' '.join(meta['loadavg_start'] or ['?'])} at start, "
        f"{' '.join(meta['loadavg_end'] or ['?'])} at end; {meta['date_utc']}.",
        "- recur times the recurrent stack only (`recur bench` on the imported GRU); PyTorch, "
        "ONNX Runtime and tract run the whole model, GRU plus the linear head (a 256-term dot "
        "product, well under 1 µs).",
        "- Outputs checked against PyTorch's (|diff| ≤ "
        f"{a.atol:g}) before timing: ONNX Runtime and tract (model output), recur "
        "(final states through `recur run --precision P`, head applied in numpy; f16 within "
        f"{REDUCED_ATOL['f16']:g} and int8 within {REDUCED_ATOL['int8']:g}, as they quantize "
        "the weights). Largest differences: "
        + ", ".join(f"recur {p} {worst_err(c):.2g}" for p, c in recur_check.items()) + ".",
        "- time ÷ recur f32 1t: the row's median over recur f32 1-thread's median (above 1: "
        "slower than recur).",
        f"- f32 floor: {2 * MACS_PER_STEP / 1e6:.3f} MFLOP per step at "
        f"{PEAK_GFLOPS_PER_CORE:g} GFLOP/s per core ({floors} on one core), divided by the "
        "row's threads; the column is floor ÷ median.",
    ]
    for r in rows:
        if "error" in r:
            notes.append(f"- {r['system']} ({r['precision']}, {r['threads']} thread(s)) not "
                         f"timed: {r['error']}")
    table = "\n".join(lines + notes)
    print(table)

    out = {"meta": meta, "recur_check": recur_check, "rows": [
        {k: v for k, v in r.items() if k not in ("pick",)} for r in rows]}
    with open(os.path.join(a.dir, "peers.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(a.dir, "peers.md"), "w") as f:
        f.write(table + "\n")
    print(f"\nwrote {os.path.join(a.dir, 'peers.json')} and peers.md", file=sys.stderr)
    sys.exit(1 if any("error" in r and r["system"] != "tract" for r in rows) else 0)


if __name__ == "__main__":
    main()
