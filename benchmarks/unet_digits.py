r"""Bits/dim of a trained U-Net on the 8x8 digits, beside the MLP's figures of ``benchmarks/digits.py``.

    npdiff train --data digits --arch unet --out run                 # the recipe's U-Net
    python benchmarks/unet_digits.py --load run/model.npz            # 8 images' exact ODE, 360 images' bound
    python benchmarks/unet_digits.py --load run/model.npz --n-ode 360 --dtype float64

For each split (test, and the first images of train to show the gap) the script reports the two
likelihoods of :func:`npdiff.likelihood.image_bpd` with the headline settings of ``benchmarks/digits.py``
(uniform dequantization, one draw, S = 1; RK45 at rtol = atol = 1e-5 from t_min = 1e-5 with the exact
trace; the VLB at the recipe's T and variance with the discretized decoder, K = 17):

- the exact ODE bits/dim on the first ``--n-ode`` images, each solved on its own (one adaptive step size
  per image), with the network in ``--dtype`` (float32 by default: the U-Net's exact trace is 64 tangents
  through the whole network per evaluation, and float32 halves its cost; ``--check64 N`` recomputes the
  first N images in float64 with the same dequantization and reports the largest difference);
- the bound on the first ``--n-vlb`` images (float64).

Beside them: the MLP's figures from ``benchmarks/results/digits.json`` (the default image recipe, all 360
images of each split). The figures go to ``benchmarks/results/unet_digits.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import RESULTS, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.likelihood import image_bpd  # noqa: E402
from npdiff.recipes import RECIPES  # noqa: E402


def mlp_figures() -> dict:
    r"""The MLP's rows of ``benchmarks/results/digits.json`` by split, and its training notes."""
    path = os.path.join(RESULTS, "digits.json")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {r["split"]: r for r in doc["rows"]}, doc.get("notes", {})


def ode_one_by_one(model, x: np.ndarray, K: int, seed: int) -> tuple[np.ndarray, list[int], float]:
    r"""Exact ODE bits/dim of each image of x, solved alone; a fresh dequantization stream per image index."""
    bpd, nfe, t0 = [], [], time.perf_counter()
    for i in range(x.shape[0]):
        r = image_bpd(model, x[i:i + 1], K, np.random.default_rng([seed, i]), method="ode", batch_size=None)
        bpd.append(r.summary()["bpd_ode"])
        nfe.append(int(r.ode.nfe))
        print(f"  image {i}: {bpd[-1]:.4f} bits/dim ({nfe[-1]} evaluations, {time.perf_counter() - t0:.0f} s so far)",
              flush=True)
    return np.array(bpd, dtype=np.float64), nfe, time.perf_counter() - t0


def mean_se(v: np.ndarray) -> tuple[float, float | None]:
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", required=True, metavar="FILE", help="the U-Net checkpoint (npdiff train --arch unet)")
    ap.add_argument("--n-ode", type=int, default=8, help="images per split for the exact ODE (default 8)")
    ap.add_argument("--n-vlb", type=int, default=360, help="images per split for the bound (default 360, all)")
    ap.add_argument("--splits", nargs="+", default=["test", "train"], choices=["test", "train"])
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="the ODE's network dtype")
    ap.add_argument("--check64", type=int, default=0, metavar="N", help="recompute N ODE images in float64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    d = digits()
    ck = load(args.load, arch="unet")
    model = ck.denoiser(ema=True)
    ev = RECIPES["images"].get("eval", {})
    T, variance = ev.get("vlb_T", 50), ev.get("vlb_variance", "large")
    mlp, mlp_notes = mlp_figures()
    print(f"scoring {args.load} ({ck.step} steps, {model.config.n_params:,} weights)", flush=True)
    train = ck.train_config or {}
    notes = {"checkpoint_steps": ck.step, "batch_size": train.get("batch_size"), "lr": train.get("lr"),
             "n_params": model.config.n_params, "vlb_T": T, "vlb_variance": variance, "draws": 1, "seed": args.seed,
             "rtol": 1e-5, "atol": 1e-5, "mlp_steps": mlp_notes.get("steps"), "mlp_train_s": mlp_notes.get("train_s")}
    rows = []
    for split in args.splits:
        images = d.test if split == "test" else d.train
        x_ode, x_vlb = images[: args.n_ode], images[: args.n_vlb]
        print(f"{split}: exact ODE on {x_ode.shape[0]} images ({args.dtype}) ...", flush=True)
        bpd, nfe, ode_s = ode_one_by_one(model.with_dtype(np.dtype(args.dtype)), x_ode, d.K, args.seed + 1)
        check = None
        if args.check64:
            ref, _, _ = ode_one_by_one(model, x_ode[: args.check64], d.K, args.seed + 1)
            check = float(np.abs(ref - bpd[: args.check64]).max())
            print(f"  float64 on the first {args.check64}: largest difference {check:.2e} bits/dim", flush=True)
        t0 = time.perf_counter()
        bound = image_bpd(model, x_vlb, d.K, np.random.default_rng(args.seed + 2), method="vlb", T=T, variance=variance)
        vlb_s = time.perf_counter() - t0
        ode_mean, ode_se = mean_se(bpd)
        s = bound.summary()
        # the bound on the ODE's own images: the two likelihoods of the same pictures side by side
        same = float(bound.vlb.total[: x_ode.shape[0]].mean() / (d.dim * np.log(2.0)))
        m = mlp.get(split, {})
        rows.append({"split": split, "ode_images": int(x_ode.shape[0]), "bpd_ode": ode_mean, "bpd_ode_se": ode_se,
                     "nfe_median": float(np.median(nfe)), "ode_s_per_image": ode_s / x_ode.shape[0],
                     "ode_dtype": args.dtype, "float64_check": check, "vlb_images": int(x_vlb.shape[0]),
                     "bpd_vlb": s["bpd_vlb"], "bpd_vlb_se": s["bpd_vlb_se"], "bpd_vlb_same_images": same,
                     "vlb_s": vlb_s, "mlp_images": m.get("images"), "mlp_bpd_ode": m.get("bpd_ode"),
                     "mlp_bpd_ode_se": m.get("bpd_ode_se"), "mlp_bpd_vlb": m.get("bpd_vlb"),
                     "mlp_bpd_vlb_se": m.get("bpd_vlb_se")})
        r = rows[-1]
        print(f"{split}: U-Net ODE {ode_mean:.3f}" + (f" +- {ode_se:.3f}" if ode_se else "")
              + f" bits/dim on {x_ode.shape[0]} images (their bound {same:.3f}); VLB T={T} {variance} "
              f"{s['bpd_vlb']:.3f} +- {s['bpd_vlb_se']:.3f} on {x_vlb.shape[0]} images ({vlb_s:.0f} s); "
              f"MLP on {r['mlp_images']}: ODE {r['mlp_bpd_ode']}, VLB {r['mlp_bpd_vlb']}", flush=True)
        # after each split, so that a long run cut short keeps the splits it finished
        write_results("unet_digits", rows, notes=notes)


if __name__ == "__main__":
    main()
