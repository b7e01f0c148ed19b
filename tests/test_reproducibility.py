"""Reproducibility: the same seed gives the same bits in fresh processes; Numba and NumPy agree.

What holds, and where it stops:

* **Same seed, same machine, same thread count: bit-identical.** Everything random comes from one
  ``np.random.Generator``, the kernels are deterministic, and no state survives between processes,
  so training losses, samples and every checkpoint array are equal bit for bit across two fresh
  processes (compared as arrays: the .npz's zip entries carry a timestamp, so the file bytes differ).
* **Another BLAS thread count: not bit-identical.** A multi-threaded matmul splits the inner sums
  into per-thread partial sums, so the summation order, hence the last bits, depend on the number
  of threads (and on the BLAS build and the CPU's SIMD width). At the small sizes used here
  OpenBLAS does not split the work and 1 vs 2 threads gave identical bits (measured: 62 of 62
  arrays), but nothing guarantees that for larger matrices or another BLAS, so the test asks only
  for agreement to 1e-12 relative, what a reordered float64 sum of these lengths keeps. Float32
  training amplifies such differences step by step: across thread counts only closeness, not
  identity, can be promised, and checkpoints are bit-identical only at a fixed thread count.
* **NUMBA_DISABLE_JIT=1: within 1e-10 (float64).** The NumPy twins and the interpreted kernels sum
  in another order than the compiled kernels (which may also use fastmath's reassociation), so
  agreement is to rounding, tested at 1e-10 relative for every kernel's output (measured: at most
  4.4e-12 relative, 59 of 62 arrays not bit-identical).

Each comparison runs ``_WORKER`` in fresh subprocesses with the environment under test.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_WORKER = textwrap.dedent(r"""
    import sys
    import numpy as np
    from npdiff import analytic, checkpoint, metrics, sample
    from npdiff.nn import MLPConfig, mlp
    from npdiff.nn.fast import FastMLP
    from npdiff.nn.model import DiffusionMLP
    from npdiff.nn.optim import AdamW
    from npdiff.schedule import cosine, vp_linear
    from npdiff.train import TrainConfig, Trainer

    mode, out = sys.argv[1], sys.argv[2]
    res = {}
    if mode == "train":
        # a tiny run: train, checkpoint, then sample with two samplers from the EMA model
        rng = np.random.default_rng(7)
        model = DiffusionMLP(MLPConfig(width=32, depth=2, emb_dim=16, parameterization="v"), cosine(), rng=rng)
        data = lambda n, r: r.standard_normal((n, 2)) * np.array([1.0, 0.3]) + 0.5
        tr = Trainer(model, data, TrainConfig(steps=60, batch_size=32, lr=3e-3, lr_schedule="cosine",
                                              weight_decay=0.01), rng)
        hist = tr.run(progress=False)
        ck_path = out + ".ck.npz"
        tr.save(ck_path)
        ck = checkpoint.load(ck_path)
        res.update({f"ck_{k}": v for k, v in ck.optimizer.items()}, ck_params=ck.raw_model.params,
                   **{f"hist_{k}": v for k, v in hist.items()}, **{f"ck_hist_{k}": v for k, v in ck.history.items()})
        den = tr.denoiser()
        res["ddpm"] = sample.ddpm_sample(den, 16, np.random.default_rng(1), steps=20, T=100).x
        res["ode"] = sample.ode_sample(den, 16, np.random.default_rng(2), method="heun", steps=10).x
    else:
        # every Numba kernel's output on fixed inputs (float64)
        r = np.random.default_rng(3)
        x, y = r.standard_normal((40, 3)), r.standard_normal((30, 3)) + 0.2
        res["energy"] = np.array(metrics.energy_distance(x, y))
        res["mmd"] = np.array(metrics.mmd_rbf(x, y, 0.8))
        t = r.uniform(0.01, 0.99, 40)
        oracles = {
            "gmm": analytic.GaussianMixture(np.array([0.2, 0.3, 0.5]), r.standard_normal((3, 3)), r.uniform(0.1, 1.0, (3, 3))),
            "gmm_full": analytic.GaussianMixture(np.array([0.5, 0.5]), r.standard_normal((2, 3)),
                                                 np.stack([np.eye(3) + 0.3, np.eye(3) * 0.5])),
            "empirical": analytic.EmpiricalData(r.standard_normal((25, 3))),
            "box": analytic.BoxMixture(np.array([0.6, 0.4]), -np.ones((2, 3)), np.ones((2, 3)) + np.eye(3)[:2], 0.05),
        }
        for name, o in oracles.items():
            res[f"{name}_logp"] = o.log_prob(x, t)
            res[f"{name}_eps"], res[f"{name}_div"] = o.eps_and_divergence(x, t)
        for param in ("eps", "x0", "v"):
            for act in ("gelu", "silu"):
                cfg = MLPConfig(dim=3, width=24, depth=2, emb_dim=8, activation=act, parameterization=param)
                m = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(4))
                key = f"mlp_{param}_{act}"
                res[f"{key}_eps"], res[f"{key}_div"] = m.eps_and_divergence(x, t)
                params = m.params.astype(np.float64)
                grad = np.zeros_like(params)
                res[f"{key}_loss"] = np.array(FastMLP(cfg).loss_and_grad(cfg.layers(params), cfg.layers(grad), x, t, x[::-1],
                                                                         np.linspace(0.5, 2, 40)))
                res[f"{key}_jvp"] = np.stack(mlp.jvp(cfg, params, x, t, y[:1].repeat(40, 0)))
                res[f"{key}_grad"] = grad.copy()
                opt = AdamW(params, weight_decay=0.1, clip_norm=0.5, ema_decay=0.9)
                for _ in range(3):
                    res[f"{key}_gnorm"] = np.array(opt.update(params, grad, 1e-2))
                res[f"{key}_params"], res[f"{key}_ema"] = params, opt.ema.copy()
    np.savez(out, **res)
""")


def _run(tmp_path, name, mode, **env):
    out = tmp_path / f"{name}.npz"
    # compiled unless asked otherwise, even when this test session itself runs with NUMBA_DISABLE_JIT=1
    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "NUMBA_DISABLE_JIT": "0", **env}
    proc = subprocess.run([sys.executable, "-c", _WORKER, mode, str(out)], env=full_env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def test_same_seed_gives_bit_identical_losses_samples_and_checkpoints_in_fresh_processes(tmp_path):
    a = _run(tmp_path, "a", "train")
    b = _run(tmp_path, "b", "train")
    assert a.keys() == b.keys() and {"ck_params", "ck_ema", "ck_adam_m", "hist_loss", "ddpm", "ode"} <= a.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), f"{k} differs between two runs: max |diff| {np.max(np.abs(a[k] - b[k]))}"
        assert np.all(np.isfinite(a[k])), k
    # the checkpoint holds what the run computed
    np.testing.assert_array_equal(a["ck_hist_loss"], a["hist_loss"])


@pytest.fixture(scope="module")
def kernels_one_thread(tmp_path_factory):
    """Every kernel's output, compiled, one BLAS thread: the reference of the two tests below."""
    return _run(tmp_path_factory.mktemp("kernels"), "jit", "kernels")


def test_numba_disabled_agrees_with_the_compiled_kernels_within_1e_10(tmp_path, kernels_one_thread):
    jit = kernels_one_thread
    nojit = _run(tmp_path, "nojit", "kernels", NUMBA_DISABLE_JIT="1")
    assert jit.keys() == nojit.keys() and len(jit) > 40
    for k in jit:
        np.testing.assert_allclose(nojit[k], jit[k], rtol=1e-10, atol=1e-12, err_msg=f"{k}: NUMBA_DISABLE_JIT=1 vs jitted")


@pytest.mark.parametrize("threads", ["2"])
def test_another_blas_thread_count_agrees_to_rounding(tmp_path, threads, kernels_one_thread):
    one = kernels_one_thread
    many = _run(tmp_path, "many", "kernels", OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    for k in one:
        np.testing.assert_allclose(many[k], one[k], rtol=1e-12, atol=1e-14, err_msg=f"{k}: {threads} BLAS threads vs 1")
