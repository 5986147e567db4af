"""Builds the escalation model of shared/docs/anchors.md once, with fixed weights, for every
system the peer harness times (recur, ONNX Runtime, tract, PyTorch).

    python make_model.py OUT_DIR [--seed 0]

Writes
  OUT_DIR/esc.pt             the whole PyTorch module (GRU + linear head), for PyTorch
  OUT_DIR/gru.safetensors    the GRU's state_dict with PyTorch's names, for `recur import-torch`
  OUT_DIR/head.safetensors   the head (weight [1, 256], bias [1]); recur times the GRU and adds
                             the 256-term head in its report (one dot product, ~0.1 µs)
  OUT_DIR/esc.onnx           the same module exported to ONNX (opset 17, dynamic length), for
                             ONNX Runtime and tract
  OUT_DIR/check.npz          inputs of length 18 and 112 and PyTorch's outputs, so each
                             system's output can be checked before it is timed
"""
import argparse, os
import numpy as np
import torch
from safetensors.torch import save_file


class Esc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(64, 128, num_layers=2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(256, 1)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    m = Esc().eval()
    torch.save(m, os.path.join(a.out, "esc.pt"))
    save_file({k: v.contiguous() for k, v in m.gru.state_dict().items()},
              os.path.join(a.out, "gru.safetensors"))
    save_file({k: v.contiguous() for k, v in m.head.state_dict().items()},
              os.path.join(a.out, "head.safetensors"))
    torch.onnx.export(m, torch.randn(1, 112, 64), os.path.join(a.out, "esc.onnx"),
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {1: "T"}},
                      opset_version=17, dynamo=False)
    rng = np.random.default_rng(a.seed)
    check = {}
    with torch.inference_mode():
        for t in (18, 112):
            x = rng.standard_normal((1, t, 64)).astype(np.float32)
            _, h = m.gru(torch.from_numpy(x))
            check[f"x{t}"] = x
            check[f"h{t}"] = torch.cat([h[-2], h[-1]], dim=1).numpy()
            check[f"y{t}"] = m(torch.from_numpy(x)).numpy()
    np.savez(os.path.join(a.out, "check.npz"), **check)
    print(f"wrote {a.out}: esc.pt, gru.safetensors, head.safetensors, esc.onnx, check.npz")


if __name__ == "__main__":
    main()
