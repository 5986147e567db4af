#!/usr/bin/env python3
"""Trains recur's escalation forecaster (`recur demo`) in PyTorch on the exact data recur
trained on, exported by `cargo run --release -p recur --example harbor_export -- RUN OUT`.

The model, loss, optimizer, schedule, clipping, batching and early stopping follow the
`training`/`model` config recorded in the export's meta.json (recur's defaults); see
README.md for what differs. Prints per-epoch train loss, validation AUC and events/s, and the
holdout ROC-AUC of the best-validation epoch; writes everything as JSON (--out).

    python train.py EXPORT_DIR --impl packed --tbptt 64 --out result.json [--seed 1]
    python train.py EXPORT_DIR --impl stacked --out result.json    # full BPTT, one nn.GRU
    python train.py EXPORT_DIR --check-recur RUN_DIR/model   # recur's weights in this model
"""

import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


# ----------------------------------------------------------------------------- data
class Split:
    """One split of the export: flat per-step arrays plus offsets."""

    def __init__(self, d, name):
        self.name = name
        self.ids = np.load(os.path.join(d, f"{name}_ids.npy"))
        self.scalars = np.load(os.path.join(d, f"{name}_scalars.npy"))
        self.offsets = np.load(os.path.join(d, f"{name}_offsets.npy"))
        self.lengths = np.load(os.path.join(d, f"{name}_lengths.npy"))
        self.labels = np.load(os.path.join(d, f"{name}_labels.npy")).astype(np.float32)
        assert len(self.offsets) == len(self.lengths) + 1
        assert (np.diff(self.offsets) == self.lengths).all() and self.offsets[-1] == len(self.ids)
        assert self.scalars.shape[0] == len(self.ids)

    def __len__(self):
        return len(self.lengths)

    def batch(self, idx):
        """Padded batch of samples `idx` (padding is never read: sequences are packed)."""
        lens = self.lengths[idx]
        t = np.arange(lens.max())
        mask = t[None, :] < lens[:, None]
        pos = np.where(mask, self.offsets[idx][:, None] + t[None, :], 0)
        ids = torch.from_numpy(self.ids[pos])
        x = torch.from_numpy(self.scalars[pos])
        return ids, x, torch.from_numpy(lens), torch.from_numpy(self.labels[idx])


def epoch_batches(n, lengths, batch_size, bucketing, rng):
    """recur's trainer: shuffle; with bucketing, sort pools of 32 batches by length, cut into
    batches, shuffle the batches."""
    idx = rng.permutation(n)
    if bucketing:
        pool = batch_size * 32
        idx = np.concatenate(
            [p[np.argsort(lengths[p], kind="stable")] for p in np.array_split(idx, range(pool, n, pool))]
        )
    batches = [idx[i : i + batch_size] for i in range(0, n, batch_size)]
    if bucketing:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


# ----------------------------------------------------------------------------- model
class Forecaster(nn.Module):
    """Embedding(type) ‖ scalars → nn.GRU(num_layers, bidirectional) → [h_fwd, h_bwd] of the
    top layer → Linear → one logit. Same parameter names as recur's checkpoint."""

    def __init__(self, vocab, embed_dim, n_scalars, hidden, layers, dropout):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim)
        self.rnn = nn.GRU(
            embed_dim + n_scalars,
            hidden,
            num_layers=layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * hidden, 1)
        self.layers, self.hidden, self.dropout = layers, hidden, dropout
        # Single-direction views sharing the stacked GRU's parameters, for truncated BPTT.
        # A plain list: not registered, so parameters() and state_dict() see each weight once.
        self._dirs = []
        for l in range(layers):
            row = []
            for sfx in ("", "_reverse"):
                g = nn.GRU(self.rnn.input_size if l == 0 else 2 * hidden, hidden, batch_first=True)
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    setattr(g, f"{n}_l0", getattr(self.rnn, f"{n}_l{l}{sfx}"))
                row.append(g)
            self._dirs.append(row)

    def init_like_recur(self):
        """recur's `Init::recurrent_default`: Xavier-uniform input weights, orthogonal
        recurrent weights, zero biases; embedding N(0, 1) and nn.Linear's default head."""
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(p)
            else:
                nn.init.zeros_(p)

    def inputs(self, ids, x):
        return torch.cat([self.embed(ids), x], dim=-1)

    def forward(self, ids, x, lens):
        packed = pack_padded_sequence(self.inputs(ids, x), lens, batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)  # [layers * 2, B, H], in the batch's order
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=-1)).squeeze(-1)

    def forward_dirs(self, ids, x, lens, k=0, packed=True):
        """The same function as `forward`, computed layer by layer and direction by direction
        (single-direction views of the same parameters). With `k > 0` the gradient does not
        cross the boundaries between steps t-1 and t for t % k == 0, in either direction
        (recur's truncated BPTT); the state is carried across them. With `packed=False` each
        direction runs on a padded tensor, the reverse direction on each sequence reversed
        within its length, so real steps never see padding (the values are those of the packed
        run; PyTorch's CPU backward of packed sequences is superlinear in the length)."""
        inp = self.inputs(ids, x)
        k = k or inp.shape[1]
        finals = None
        for l in range(self.layers):
            if l > 0:
                inp = F.dropout(inp, self.dropout, self.training)
            outs, finals = [], []
            for d in (0, 1):
                o, h = run_direction(self._dirs[l][d], inp, lens, k, reverse=d == 1, packed=packed)
                outs.append(o)
                finals.append(h)
            inp = torch.cat(outs, dim=-1)
        return self.head(torch.cat(finals, dim=-1)).squeeze(-1)


def flip_within(x, n):
    """Reverses each row's first n[i] steps (the rest stays in place)."""
    t = torch.arange(x.shape[1])
    idx = torch.where(t[None, :] < n[:, None], n[:, None] - 1 - t[None, :], t[None, :])
    return torch.gather(x, 1, idx[:, :, None].expand(-1, -1, x.shape[2]))


def run_direction(g, inp, lens, k, reverse, packed):
    """One direction of one layer over chunks [a, a + k): outputs [B, T, H] and final states
    [B, H] (forward: at each sequence's last step; reverse: at step 0). The state entering a
    chunk is detached."""
    b_sz, t_max, _ = inp.shape
    h_sz = g.hidden_size
    out = inp.new_zeros(b_sz, t_max, h_sz)
    h = inp.new_zeros(b_sz, h_sz)
    starts = list(range(0, t_max, k))
    for a in reversed(starts) if reverse else starts:
        b = min(a + k, t_max)
        sel = (lens > a).nonzero().squeeze(1)
        n = torch.clamp(lens[sel], max=b) - a
        xc = inp[sel, a:b]
        if reverse:
            xc = flip_within(xc, n)
        h0 = h[sel].detach().unsqueeze(0).contiguous()
        if packed:
            o, hn = g(pack_padded_sequence(xc, n, batch_first=True, enforce_sorted=False), h0)
            o, _ = pad_packed_sequence(o, batch_first=True, total_length=b - a)
            hn = hn[0]
        else:
            o, _ = g(xc, h0)
            hn = o[torch.arange(len(sel)), n - 1]
        if reverse:
            o = flip_within(o, n)
        out = torch.index_put(out, (sel[:, None], torch.arange(a, b)[None, :]), o)
        h = torch.index_put(h, (sel,), hn)
    return out, h


# ----------------------------------------------------------------------------- schedule, eval
def lr_factor(step, warmup, decay, total, min_factor):
    """recur's ScheduleConfig::factor for update `step` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    total = max(total, warmup + 1)
    progress = min((step - warmup) / (total - warmup), 1.0)
    if decay == "constant":
        return 1.0
    if decay == "linear":
        return 1.0 - (1.0 - min_factor) * progress
    if decay == "cosine":
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule decay {decay!r} is not implemented here")


@torch.no_grad()
def predict(model, split, batch_size=256):
    """Logits in split order, computed in length-sorted batches (as recur's `predict`)."""
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    out = np.empty(len(split), dtype=np.float64)
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        ids, x, lens, _ = split.batch(idx)
        out[idx] = model(ids, x, lens).double().numpy()
    return out


def metrics(split, logits, pos_weight):
    y = split.labels
    loss = F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(y).double(), pos_weight=torch.tensor([pos_weight]).double()
    ).item()
    p = 1.0 / (1.0 + np.exp(-logits))
    return {"auc": roc_auc_score(y, p), "average_precision": average_precision_score(y, p), "loss": loss}, p


# ----------------------------------------------------------------------------- main
def check_recur(model, model_dir, export, holdout, meta):
    """Loads recur's checkpoint into this model and scores the holdout with it."""
    from safetensors.torch import load_file

    sd = load_file(os.path.join(model_dir, "weights.safetensors"))
    model.load_state_dict(sd, strict=True)
    logits = predict(model, holdout)
    m, p = metrics(holdout, logits, meta["pos_weight"])
    ref = np.load(os.path.join(export, "holdout_recur_probs.npy"))
    print(
        f"recur's weights in the PyTorch model: holdout AUC {m['auc']:.5f} (recur recorded "
        f"{meta['recur']['holdout_auc']:.5f}); max |p_torch - p_recur| {np.abs(p - ref).max():.2e}"
    )
    # The layer-by-layer paths compute the same function; without truncation the same gradients.
    idx = np.argsort(holdout.lengths, kind="stable")[-64:]
    ids, x, lens, y = holdout.batch(idx)
    with torch.no_grad():
        ref_logits = model(ids, x, lens)
        for k, packed in ((0, True), (0, False), (64, True), (64, False)):
            d = (model.forward_dirs(ids, x, lens, k, packed) - ref_logits).abs().max().item()
            print(f"forward_dirs(k={k}, packed={packed}) vs the stacked nn.GRU on the 64 longest holdout cuts: max |dlogit| {d:.2e}")
    grads = []
    for f in (lambda: model(ids, x, lens), lambda: model.forward_dirs(ids, x, lens, 0, False)):
        model.zero_grad()
        F.binary_cross_entropy_with_logits(f(), y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    rel = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    print(f"gradient of the padded layer-by-layer path vs the stacked nn.GRU (full BPTT): relative difference {rel:.2e}")
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", help="directory written by the harbor_export example")
    ap.add_argument("--out", help="write the results here (JSON)")
    ap.add_argument("--seed", type=int, default=None, help="default: the recorded training.seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="default: the recorded training.epochs")
    ap.add_argument(
        "--impl",
        choices=("stacked", "packed", "padded"),
        default="stacked",
        help="training forward pass: stacked = one nn.GRU(num_layers, bidirectional) on a packed batch; "
        "packed / padded = layer by layer and direction by direction on packed / padded chunks (same "
        "function and parameters; needed for --tbptt)",
    )
    ap.add_argument("--tbptt", type=int, default=0, help="truncated BPTT chunk as recur's `truncate` (0 = full BPTT)")
    ap.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many (timing)")
    ap.add_argument("--check-recur", metavar="MODEL_DIR", help="score recur's checkpoint in this model and exit")
    ap.add_argument("--save-probs", help="write the best model's holdout probabilities here (.npy)")
    a = ap.parse_args()
    if a.tbptt and a.impl == "stacked":
        ap.error("--tbptt needs --impl packed or --impl padded")

    torch.set_num_threads(a.threads)
    meta = json.load(open(os.path.join(a.export, "meta.json")))
    tc, mc = meta["training"], meta["model"]
    rc = mc["rnn"]
    assert rc["cell"] == "gru" and rc["bidirectional"] and mc["head"] == "final" and mc["outputs"] == 1
    assert not rc["layer_norm"] and rc["proj_size"] == 0 and rc["input_dropout"] == 0 and rc["recurrent_dropout"] == 0
    seed = tc["seed"] if a.seed is None else a.seed
    epochs = tc["epochs"] if a.epochs is None else a.epochs
    torch.manual_seed(seed)
    model = Forecaster(mc["vocab"], mc["embed_dim"], mc["features"], rc["hidden_size"], rc["num_layers"], rc["dropout"])
    model.init_like_recur()
    train, val, hold = (Split(a.export, s) for s in ("train", "validation", "holdout"))
    if a.check_recur:
        check_recur(model, a.check_recur, a.export, hold, meta)
        return

    opt_c = tc["optimizer"]
    assert opt_c["kind"] in ("adam", "adamw"), opt_c["kind"]
    Opt = torch.optim.AdamW if opt_c["kind"] == "adamw" else torch.optim.Adam
    opt = Opt(
        model.parameters(),
        lr=opt_c["lr"],
        betas=(opt_c["beta1"], opt_c["beta2"]),
        eps=opt_c["eps"],
        weight_decay=meta["optimizer_weight_decay"],
    )
    sc = tc["schedule"]
    bs = tc["batch_size"]
    total_steps = sc["total_steps"] or epochs * math.ceil(len(train) / bs)
    pos_weight = meta["pos_weight"]
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight]))
    es = tc["early_stopping"]
    assert es is None or (es["metric"] == "auc" and es["mode"] == "max")
    assert tc["plateau"] is None
    print(
        f"train {len(train)} cuts ({int(train.labels.sum())} positive, {len(train.ids)} events), "
        f"validation {len(val)}, holdout {len(hold)}; pos_weight {pos_weight:.4f}; "
        f"{epochs} epochs x {math.ceil(len(train) / bs)} batches of {bs}; "
        f"{'full BPTT' if a.tbptt == 0 else f'truncated BPTT {a.tbptt}'} ({a.impl}); seed {seed}; {a.threads} threads",
        flush=True,
    )

    records, best, best_state, best_epoch, since_best = [], None, None, None, 0
    opt_steps, skipped = 0, 0
    started = time.time()
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, epoch])
        batches = epoch_batches(len(train), train.lengths, bs, tc["bucketing"], rng)
        if a.max_batches:
            batches = batches[: a.max_batches]
        model.train()
        t0 = time.time()
        loss_sum, n_loss, events = 0.0, 0, 0
        for bi, idx in enumerate(batches):
            ids, x, lens, y = train.batch(idx)
            events += int(lens.sum())
            if a.impl == "stacked":
                logits = model(ids, x, lens)
            else:
                logits = model.forward_dirs(ids, x, lens, a.tbptt, a.impl == "packed")
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc["clip_norm"] or float("inf"))
            if not (math.isfinite(loss.item()) and math.isfinite(norm.item())):
                skipped += 1  # recur skips non-finite steps (and aborts after max_bad_steps)
                continue
            for g in opt.param_groups:
                g["lr"] = opt_c["lr"] * lr_factor(
                    opt_steps, sc["warmup_steps"], sc["decay"], total_steps, sc["min_factor"]
                )
            opt.step()
            opt_steps += 1
            loss_sum += loss.item()
            n_loss += 1
            if (bi + 1) % 250 == 0:
                el = time.time() - t0
                print(
                    f"  epoch {epoch + 1} batch {bi + 1}/{len(batches)}: loss {loss_sum / n_loss:.4f}, "
                    f"{events / el:.0f} events/s",
                    flush=True,
                )
        train_secs = time.time() - t0
        t1 = time.time()
        vm, _ = metrics(val, predict(model, val), pos_weight)
        val_secs = time.time() - t1
        is_best = best is None or vm["auc"] > best + (es["min_delta"] if es else 0.0)
        if is_best:
            best, best_state, best_epoch, since_best = vm["auc"], copy.deepcopy(model.state_dict()), epoch + 1, 0
        else:
            since_best += 1
        rec = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(n_loss, 1),
            "val": vm,
            "is_best": is_best,
            "lr": opt.param_groups[0]["lr"],
            "steps": opt_steps,
            "skipped_steps": skipped,
            "train_seconds": train_secs,
            "val_seconds": val_secs,
            "events": events,
            "train_events_per_s": events / train_secs,
            # recur's log divides by the epoch's seconds including validation.
            "events_per_s_incl_validation": events / (train_secs + val_secs),
        }
        records.append(rec)
        print(
            f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f}, validation AUC {vm['auc']:.4f} "
            f"(AP {vm['average_precision']:.4f}){' *' if is_best else ''}, {train_secs:.0f} s train + "
            f"{val_secs:.0f} s validation ({rec['train_events_per_s']:.0f} events/s training, "
            f"{rec['events_per_s_incl_validation']:.0f} incl. validation)",
            flush=True,
        )
        if es and since_best > es["patience"]:
            if epoch + 1 < epochs:
                print(f"early stop after epoch {epoch + 1}")
            break

    model.load_state_dict(best_state)
    hm, hp = metrics(hold, predict(model, hold), pos_weight)
    total = time.time() - started
    print(
        f"holdout AUC {hm['auc']:.5f} (AP {hm['average_precision']:.4f}) at the best validation epoch "
        f"{best_epoch} (validation AUC {best:.4f}); recur: {meta['recur']['holdout_auc']:.5f}; {total:.0f} s in all"
    )
    if a.save_probs:
        np.save(a.save_probs, hp)
    if a.out:
        result = {
            "framework": f"torch {torch.__version__}",
            "export": os.path.abspath(a.export),
            "seed": seed,
            "threads": a.threads,
            "epochs_run": len(records),
            "epochs": epochs,
            "max_batches": a.max_batches,
            "bptt": "full" if a.tbptt == 0 else f"truncated {a.tbptt}",
            "impl": a.impl,
            "total_steps_for_schedule": total_steps,
            "best_epoch": best_epoch,
            "best_val_auc": best,
            "holdout": {**hm, "samples": len(hold), "positives": int(hold.labels.sum())},
            "recur_holdout_auc": meta["recur"]["holdout_auc"],
            "records": records,
            "seconds": total,
        }
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
