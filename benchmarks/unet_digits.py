r"""Bits/dim of a trained U-Net on the 8x8 digits, beside the MLP's figures of ``benchmarks/digits.py``.

    npdiff train --data digits --arch unet --out run                     # the recipe's U-Net
    python benchmarks/unet_digits.py --load run/model.npz                # 8 images' exact ODE, 360 images' bound
    python benchmarks/unet_digits.py --load run/model.npz --n-ode 360 --rtol 1e-4 --budget 1400   # in pieces
    python benchmarks/unet_digits.py --load run/model.npz --part settings   # tolerance, dtype and chunk checks

For each split (test, and the first images of train to show the gap) the script reports the two
likelihoods of :func:`npdiff.likelihood.image_bpd` with the headline settings of ``benchmarks/digits.py``
(uniform dequantization, one draw, S = 1; RK45 from t_min = 1e-5 with the exact trace; the VLB of 50 uniform
steps with the fixed-large variance and the discretized decoder, K = 17, the MLP's chain there; the recipe's own
chain is ``benchmarks/digits_bound.py``'s):

- the exact ODE bits/dim on the first ``--n-ode`` images, solved ``--chunk`` at a time (one adaptive step
  size per chunk; 1: each image alone) at rtol = atol = ``--rtol``, with the network in ``--dtype``
  (float32 by default: the U-Net's exact trace is 64 tangents through the whole network per evaluation,
  and float32 halves its cost); every image has its own dequantization stream (seeded by its index), so
  the same image gets the same offsets whatever the chunk, and figures of two settings pair image by image;
- the bound on the first ``--n-vlb`` images (float64).

Each image's result is kept in ``--cache`` (a JSON file under ``benchmarks/out/``) as soon as its solve
ends, and a run stops starting new solves after ``--budget`` seconds: a long evaluation is run in pieces,
each picking up where the last stopped, and the results file holds the images finished so far (the row
says how many).

``--part settings`` measures what the cheaper settings cost in accuracy, on the first ``--n-settings`` test
images: every setting of ``--settings`` (dtype:rtol:chunk) against the first one (the reference), the
difference in bits/dim paired per image (mean, standard error, largest), evaluations and seconds per
image. The figures go to ``benchmarks/results/unet_ode_settings.json``, or to the file ``--results`` names
(``unet_ode_split``: the looser tolerance against the table's on all 360 test images).

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
from npdiff.likelihood import image_bpd, ode_log_likelihood  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "out", "unet_ode_cache.json")
SETTINGS = ["float32:1e-5:1", "float32:1e-4:1", "float32:1e-3:1", "float64:1e-4:1"]


def mlp_figures() -> dict:
    r"""The MLP's rows of ``benchmarks/results/digits.json`` by split, and its training notes."""
    path = os.path.join(RESULTS, "digits.json")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {r["split"]: r for r in doc["rows"]}, doc.get("notes", {})


class Cache:
    r"""Per-image ODE results kept on disk as they finish, keyed by checkpoint, split, index and setting."""

    def __init__(self, path: str, checkpoint: str, seed: int):
        self.path, self.tag = path, f"{os.path.abspath(checkpoint)}|{os.path.getmtime(checkpoint):.0f}|seed{seed}"
        self.data = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                self.data = json.load(f)

    def key(self, split: str, i: int, dtype: str, rtol: float, chunk: int) -> str:
        return f"{self.tag}|{split}|{i}|{dtype}|{rtol:g}|{chunk}"

    def get(self, *key) -> dict | None:
        return self.data.get(self.key(*key))

    def put(self, entries: dict) -> None:
        self.data.update(entries)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


def dequantized(x: np.ndarray, K: int, seed: int, first: int) -> np.ndarray:
    r"""x + u, u ~ U(-1/(K-1), 1/(K-1)) per pixel, image ``first + j`` drawing from its own stream ``[seed, first + j]``.

    The offsets of :func:`npdiff.likelihood.dequantized_bpd` for one image given ``default_rng([seed, i])``, so that
    a chunk's images get the offsets they get alone (checked against ``image_bpd`` on the first image).
    """
    delta = 1.0 / (K - 1)
    u = [np.random.default_rng([seed, first + j]).uniform(-delta, delta, size=(1, x.shape[1])) for j in range(x.shape[0])]
    return x + np.concatenate(u)  # (B, D)


def solve(model, x: np.ndarray, K: int, seed: int, first: int, rtol: float) -> tuple[np.ndarray, int]:
    r"""Exact ODE bits/dim (B,) of the images x (one chunk, one adaptive step size) and the chunk's evaluations."""
    D = x.shape[1]
    r = ode_log_likelihood(model, dequantized(x, K, seed, first), rtol=rtol, atol=rtol)
    log_q = -D * np.log(2.0 / (K - 1))  # the uniform offsets' log-density
    return -(r.log_p - log_q) / (D * np.log(2.0)), int(r.nfe)


def ode_images(model, x: np.ndarray, K: int, seed: int, split: str, dtype: str, rtol: float, chunk: int, cache: Cache,
               deadline: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""bits/dim, evaluations of the image's solve and seconds per image of the first images of x, from the cache or
    solved now (until ``deadline``); returns as many images as are done from the first on."""
    net = model.with_dtype(np.dtype(dtype))
    for start in range(0, x.shape[0], chunk):
        stop = min(start + chunk, x.shape[0])
        if all(cache.get(split, i, dtype, rtol, chunk) for i in range(start, stop)):
            continue
        if time.perf_counter() > deadline:
            print(f"  budget spent: stopping before image {start}", flush=True)
            break
        t0 = time.perf_counter()
        bpd, nfe = solve(net, x[start:stop], K, seed, start, rtol)
        s = (time.perf_counter() - t0) / (stop - start)
        cache.put({cache.key(split, i, dtype, rtol, chunk): {"bpd": float(b), "nfe": nfe, "s": s}
                   for i, b in zip(range(start, stop), bpd)})
        print(f"  {split} {dtype} rtol {rtol:g} chunk {chunk}: images {start}-{stop - 1}: "
              + ", ".join(f"{b:.4f}" for b in bpd) + f" bits/dim ({nfe} evaluations, {s:.1f} s per image)", flush=True)
    done = []
    for i in range(x.shape[0]):
        e = cache.get(split, i, dtype, rtol, chunk)
        if e is None:
            break
        done.append(e)
    return (np.array([e["bpd"] for e in done]), np.array([e["nfe"] for e in done], dtype=float),
            np.array([e["s"] for e in done]))


def mean_se(v: np.ndarray) -> tuple[float | None, float | None]:
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None)


def parse_setting(text: str) -> tuple[str, float, int]:
    dtype, rtol, chunk = text.split(":")
    if dtype not in ("float32", "float64"):
        raise SystemExit(f"--settings: dtype must be float32 or float64, got {dtype!r}")
    return dtype, float(rtol), int(chunk)


def settings_part(args, model, d, cache: Cache, deadline: float, base_notes: dict) -> None:
    r"""Each setting against the first on the same test images, paired per image."""
    x = d.test[: args.n_settings]
    settings = [parse_setting(s) for s in args.settings]
    solved = {s: ode_images(model, x, d.K, args.seed + 1, "test", *s, cache, deadline) for s in settings}
    ref, rows = solved[settings[0]][0], []
    for (dtype, rtol, chunk), (bpd, nfe, sec) in solved.items():
        n = min(bpd.size, ref.size)
        if n == 0:
            continue
        diff = bpd[:n] - ref[:n]
        mean, se = mean_se(diff)
        # a float64 row against the float32 row of its own rtol and chunk: the dtype's own share of the difference
        f32 = solved.get(("float32", rtol, chunk)) if dtype == "float64" else None
        m32 = min(n, f32[0].size) if f32 is not None else 0
        rows.append({"dtype": dtype, "rtol": rtol, "chunk": chunk, "images": int(n), "bpd_ode": float(bpd[:n].mean()),
                     "diff": mean, "diff_se": se, "diff_max": float(np.abs(diff).max()),
                     "float32_diff_max": float(np.abs(bpd[:m32] - f32[0][:m32]).max()) if m32 else None,
                     "nfe_median": float(np.median(nfe[:n])),
                     "s_per_image": float(sec[:n].mean()), "split_min": float(sec[:n].mean() * d.test.shape[0] / 60)})
        r = rows[-1]
        print(f"{dtype} rtol {rtol:g} chunk {chunk}: {n} images, {r['bpd_ode']:.4f} bits/dim, minus reference "
              f"{mean:+.5f}" + (f" +- {se:.5f}" if se else "") + f" (largest {r['diff_max']:.5f}); "
              f"{r['nfe_median']:.0f} evaluations per solve, {r['s_per_image']:.1f} s per image, "
              f"{r['split_min']:.0f} min for the split", flush=True)
    write_results(args.results or "unet_ode_settings", rows, notes={**base_notes, "reference": args.settings[0],
                                                   "atol": "equal to rtol", "split": "test"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", required=True, metavar="FILE", help="the U-Net checkpoint (npdiff train --arch unet)")
    ap.add_argument("--part", choices=("scores", "settings"), default="scores")
    ap.add_argument("--n-ode", type=int, default=8, help="images per split for the exact ODE (default 8)")
    ap.add_argument("--n-train-ode", type=int, default=None, help="images of train for the exact ODE (default --n-ode)")
    ap.add_argument("--n-vlb", type=int, default=360, help="images per split for the bound (default 360, all)")
    ap.add_argument("--splits", nargs="+", default=["test", "train"], choices=["test", "train"])
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="the ODE's network dtype")
    ap.add_argument("--rtol", type=float, default=1e-5, help="RK45's rtol = atol (default 1e-5)")
    ap.add_argument("--chunk", type=int, default=1, help="images per ODE solve (default 1: each alone)")
    ap.add_argument("--check64", type=int, default=0, metavar="N", help="recompute N ODE images in float64")
    ap.add_argument("--n-settings", type=int, default=10, help="test images of --part settings (default 10)")
    ap.add_argument("--settings", nargs="+", default=SETTINGS, metavar="DTYPE:RTOL:CHUNK",
                    help="--part settings: the settings, the first the reference")
    ap.add_argument("--results", default=None, metavar="NAME",
                    help="the results file's name (default unet_digits, and unet_ode_settings for --part settings; "
                         "the settings on the whole split: unet_ode_split; a second seed's model: unet_digits_seed1)")
    ap.add_argument("--budget", type=float, default=float("inf"), metavar="SECONDS",
                    help="start no new ODE solve after this many seconds (the cache keeps what is done)")
    ap.add_argument("--cache", default=CACHE, metavar="FILE", help="per-image ODE results (default benchmarks/out/)")
    ap.add_argument("--train-s", type=float, default=None, metavar="SECONDS",
                    help="the U-Net's training time (npdiff train prints it; the checkpoint does not keep it)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    deadline = time.perf_counter() + args.budget

    d = digits()
    ck = load(args.load, arch="unet")
    model = ck.denoiser(ema=True)
    cache = Cache(args.cache, args.load, args.seed)
    # the MLP's chain in digits.json: 50 uniform steps, fixed-large variance; the recipe's own chain and the other
    # variances are benchmarks/digits_bound.py's
    T, variance = 50, "large"
    mlp, mlp_notes = mlp_figures()
    print(f"scoring {args.load} ({ck.step} steps, {model.config.n_params:,} weights)", flush=True)
    train = ck.train_config or {}
    notes = {"checkpoint_steps": ck.step, "batch_size": train.get("batch_size"), "lr": train.get("lr"),
             "n_params": model.config.n_params, "draws": 1, "seed": args.seed,
             "pieces": "the ODE figures are the per-image results kept in --cache, solved by one or several runs of this "
                       "command (each stopping after --budget seconds); without --budget one run solves them all"}
    # the chunked path reproduces image_bpd's figure of the first image alone (same offsets, same solve)
    x0 = d.test[:1]
    ref = image_bpd(model.with_dtype(np.dtype("float32")), x0, d.K, np.random.default_rng([args.seed + 1, 0]),
                    method="ode", batch_size=None, rtol=1e-3, atol=1e-3).summary()["bpd_ode"]
    mine = solve(model.with_dtype(np.dtype("float32")), x0, d.K, args.seed + 1, 0, 1e-3)[0][0]
    assert abs(ref - mine) < 1e-12, (ref, mine)
    if args.part == "settings":
        settings_part(args, model, d, cache, deadline, notes)
        return
    notes.update({"vlb_T": T, "vlb_variance": variance, "rtol": args.rtol, "atol": args.rtol, "chunk": args.chunk,
                  "mlp_steps": mlp_notes.get("steps"), "mlp_train_s": mlp_notes.get("train_s")})
    rows = []
    for split in args.splits:
        images = d.test if split == "test" else d.train
        n_ode = args.n_ode if split == "test" or args.n_train_ode is None else args.n_train_ode
        x_ode, x_vlb = images[:n_ode], images[: args.n_vlb]
        print(f"{split}: exact ODE on {x_ode.shape[0]} images ({args.dtype}, rtol {args.rtol:g}, chunk {args.chunk}) ...",
              flush=True)
        bpd, nfe, sec = ode_images(model, x_ode, d.K, args.seed + 1, split, args.dtype, args.rtol, args.chunk, cache,
                                   deadline)
        check = None
        if args.check64:
            ref64 = ode_images(model, x_ode[: args.check64], d.K, args.seed + 1, split, "float64", args.rtol, args.chunk,
                               cache, deadline)[0]
            n = min(ref64.size, bpd.size)
            check = float(np.abs(ref64[:n] - bpd[:n]).max()) if n else None
            print(f"  float64 on the first {n}: largest difference {check} bits/dim", flush=True)
        key = f"{cache.tag}|{split}|vlb|{T}|{variance}|{x_vlb.shape[0]}"
        if key not in cache.data:
            t0 = time.perf_counter()
            bound = image_bpd(model, x_vlb, d.K, np.random.default_rng(args.seed + 2), method="vlb", T=T,
                              variance=variance)
            cache.put({key: {"bpd": (bound.vlb.total / (d.dim * np.log(2.0))).tolist(), "s": time.perf_counter() - t0}})
        vlb_bpd, vlb_s = np.array(cache.data[key]["bpd"]), cache.data[key]["s"]
        ode_mean, ode_se = mean_se(bpd)
        vlb_mean, vlb_se = mean_se(vlb_bpd)
        # the bound on the ODE's own images: the two likelihoods of the same pictures side by side
        same = float(vlb_bpd[: bpd.size].mean()) if bpd.size else None
        m = mlp.get(split, {})
        rows.append({"split": split, "ode_images": int(bpd.size), "bpd_ode": ode_mean, "bpd_ode_se": ode_se,
                     "nfe_median": float(np.median(nfe)) if nfe.size else None,
                     "ode_s_per_image": float(sec.mean()) if sec.size else None,
                     "ode_dtype": args.dtype, "ode_rtol": args.rtol, "float64_check": check, "vlb_images": int(x_vlb.shape[0]),
                     "bpd_vlb": vlb_mean, "bpd_vlb_se": vlb_se, "bpd_vlb_same_images": same,
                     "vlb_s": vlb_s, "mlp_images": m.get("images"), "mlp_bpd_ode": m.get("bpd_ode"),
                     "mlp_bpd_ode_se": m.get("bpd_ode_se"), "mlp_bpd_vlb": m.get("bpd_vlb"),
                     "mlp_bpd_vlb_se": m.get("bpd_vlb_se"), "train_s": args.train_s,
                     "mlp_train_s": mlp_notes.get("train_s")})
        r = rows[-1]
        print(f"{split}: U-Net ODE {ode_mean}" + (f" +- {ode_se:.3f}" if ode_se else "")
              + f" bits/dim on {bpd.size} images (their bound {same}); VLB T={T} {variance} "
              f"{vlb_mean:.3f} +- {vlb_se:.3f} on {x_vlb.shape[0]} images ({vlb_s:.0f} s); "
              f"MLP on {r['mlp_images']}: ODE {r['mlp_bpd_ode']}, VLB {r['mlp_bpd_vlb']}", flush=True)
        # after each split, so that a long run cut short keeps the splits it finished
        write_results(args.results or "unet_digits", rows, notes=notes)


if __name__ == "__main__":
    main()
