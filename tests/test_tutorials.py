"""The tutorial chapters run end to end (--quick), write their figures, and print sane numbers.

Each chapter runs once, in order, as a subprocess from the repository root, writing into one
temporary folder (chapter 5 reuses the model chapter 4 saved there, as a reader's run does).
The checks on the printed numbers are the chapters' own claims: an identity holds to
rounding error, an estimator lands on a known value within its Monte Carlo error, a bound
is not below what it bounds.
"""

from __future__ import annotations

import ast
import itertools
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = {
    0: "00_the_whole_idea.py",
    1: "01_forward_process.py",
    2: "02_posteriors.py",
    3: "03_perfect_denoiser.py",
    4: "04_training_the_mlp.py",
    5: "05_exact_likelihood.py",
    6: "06_small_images.py",
    7: "07_fast_sampling.py",
    8: "08_guidance.py",
    9: "09_unet.py",
    10: "10_prompts.py",
    11: "11_editing.py",
}
FIGURES = {
    1: ["01_dissolving.png", "01_schedules.png", "01_chain.png"],
    2: ["02_posterior.png", "02_variances.png", "02_decoder.png"],
    3: ["03_score_fields.png", "03_samplers.png", "03_memorization.png"],
    4: ["04_optimizer.png", "04_training.png", "04_excess.png", "04_samples.png"],
    5: ["05_ode_vs_vlb.png", "05_vlb_terms.png", "05_nll_vs_entropy.png", "05_variance_terms.png", "05_variance_map.png",
        "05_gap_by_time.png"],
    6: ["06_digits.png", "06_samples.png", "06_reverse.png", "06_vlb_terms.png", "06_bits_per_dim.png", "06_levers.png"],
    7: ["07_trajectories.png", "07_kl_vs_nfe.png", "07_halves.png", "07_steps.png"],
    8: ["08_score_fields.png", "08_guided_samples.png", "08_tilted_vs_ode.png", "08_trained.png", "08_digits.png"],
    9: ["09_im2col.png", "09_receptive_field.png", "09_scale_shift.png", "09_attention.png", "09_samples.png"],
    10: ["10_prompts.png", "10_attention.png", "10_guided_samples.png", "10_adherence.png", "10_latent_space.png",
         "10_latent_samples.png", "10_latent_costs.png"],
    11: ["11_inpaint_2d.png", "11_inpaint_budget.png", "11_inpaint_glide.png", "11_completions.png", "11_sdedit.png",
         "11_sdedit_curve.png", "11_thresholding.png", "11_lowres.png", "11_cascade.png", "11_cascade_results.png"],
}
# the chapters written as sphinx-gallery cells (``# %%`` text cells in reST between short code cells)
CELL_CHAPTERS = (1, 2, 3, 4, 10, 11)
CODE_WIDTH = 88  # the site's code boxes show 88 columns without scrolling
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LINE = re.compile(r"^  (?P<name>\S.*?) = (?P<value>\S+)(?:  \(.*\))?$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, subprocess.CompletedProcess]]:
    out = tmp_path_factory.mktemp("tutorials_out")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = {}
    for number, script in CHAPTERS.items():  # in order: chapter 5 reads chapter 4's model
        done[number] = subprocess.run(
            [sys.executable, str(REPO / "tutorials" / script), "--quick", "--out", str(out)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )
    return out, done


def _result(runs, number: int) -> subprocess.CompletedProcess:
    proc = runs[1][number]
    assert proc.returncode == 0, f"chapter {number} exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def numbers(stdout: str) -> dict[str, float]:
    r"""The ``  name = value  (note)`` lines a chapter prints, as {name: value}."""
    found = {}
    for line in stdout.splitlines():
        m = _LINE.match(line)
        if m:
            found[m["name"]] = float(m["value"])
    return found


def _nums(runs, number: int) -> dict[str, float]:
    got = numbers(_result(runs, number).stdout)
    assert got, f"chapter {number} printed no 'name = value' lines"
    return got


def _get(nums: dict[str, float], name: str) -> float:
    assert name in nums, f"the chapter no longer prints {name!r}; it prints {sorted(nums)}"
    return nums[name]


def cells(source: str) -> list[tuple[str, str]]:
    r"""A chapter as sphinx-gallery reads it: [("text" or "code", content)], the docstring first.

    A line ``# %%`` starts a text cell made of the comment lines after it (without their ``# ``);
    everything else up to the next ``# %%`` is a code cell.
    """
    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=False) or ""
    lines = source.splitlines()[tree.body[0].end_lineno:] if doc else source.splitlines()
    found, code, i = [("text", doc)], [], 0
    while i < len(lines):
        if lines[i].strip() == "# %%":
            if any(c.strip() for c in code):
                found.append(("code", "\n".join(code).strip("\n")))
            code, i, text = [], i + 1, []
            while i < len(lines) and lines[i].startswith("#"):
                text.append(lines[i][2:])
                i += 1
            found.append(("text", "\n".join(text)))
        else:
            code.append(lines[i])
            i += 1
    if any(c.strip() for c in code):
        found.append(("code", "\n".join(code).strip("\n")))
    return found


@pytest.mark.parametrize("number", CELL_CHAPTERS)
def test_chapter_is_a_notebook_of_cells(number: int) -> None:
    script = CHAPTERS[number]
    blocks = cells((REPO / "tutorials" / script).read_text())
    head = blocks[0][1].strip().splitlines()
    # the page's title, underlined as reST wants it, and the command that runs the chapter
    assert head[0].startswith(f"Chapter {number}: ") and head[1] == "=" * len(head[0]), head[:2]
    assert f"    python tutorials/{script} [--quick] [--out DIR]" in blocks[0][1]
    kinds = [kind for kind, _ in blocks]
    assert "code" in kinds and all(a != b for a, b in itertools.pairwise(kinds)), f"cells do not alternate: {kinds}"
    # sections numbered 1, 2, 3, ... without a gap, each stating its math in typeset form
    sections = []
    for kind, text in blocks:
        if kind == "text":
            for title, rule in zip(text.splitlines(), text.splitlines()[1:]):
                if re.fullmatch(r"-{3,}", rule) and len(rule) == len(title):
                    sections.append([title, text])
                    break
            else:
                if sections:
                    sections[-1][1] += text
    assert [int(title.split(".")[0]) for title, _ in sections] == list(range(1, len(sections) + 1)), sections
    for title, text in sections:
        assert ":math:`" in text or ".. math::" in text, f"section {title!r} has no typeset formula"
    for kind, text in blocks:
        if kind == "code":
            wide = [line for line in text.splitlines() if len(line) > CODE_WIDTH]
            assert not wide, f"{script}: code lines wider than {CODE_WIDTH} columns: {wide}"


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(CHAPTERS))
def test_chapter_runs_and_prints_finite_numbers(runs, number: int) -> None:
    proc = _result(runs, number)
    assert f"chapter {number:02d} done" in proc.stdout
    for name, value in numbers(proc.stdout).items():
        assert math.isfinite(value), f"chapter {number} printed {name} = {value}"
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("number", CELL_CHAPTERS)
def test_chapter_names_its_files_without_folders(runs, number: int) -> None:
    # a page shows what the chapter prints: the file's name in the --out folder, never where that folder is
    proc = _result(runs, number)
    named = re.findall(r"^(?:figure|animation): (.*)$|^  saved the EMA model to (.*)$", proc.stdout, re.M)
    assert named, f"chapter {number} names no file it wrote"
    for name in (a or b for a, b in named):
        assert "/" not in name and "\\" not in name, f"chapter {number} printed a path: {name!r}"
        assert (runs[0] / name).is_file(), f"chapter {number} printed {name!r}, which is not in the output folder"


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(FIGURES))
def test_chapter_writes_valid_pngs(runs, number: int) -> None:
    import matplotlib.image as mpimg

    _result(runs, number)
    out = runs[0]
    for name in FIGURES[number]:
        path = out / name
        assert path.is_file(), f"chapter {number} did not write {name} (folder holds {sorted(p.name for p in out.iterdir())})"
        assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{name} does not start with the PNG signature"
        img = mpimg.imread(path)  # decodes the whole file: a truncated PNG fails here
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 300, f"{name} has shape {img.shape}"
        assert float(np.std(img[..., :3])) > 0.01, f"{name} is blank (one flat colour)"


@pytest.mark.slow
def test_chapter3_writes_an_animated_gif(runs) -> None:
    from PIL import Image

    _result(runs, 3)
    path = runs[0] / "03_flow.gif"
    assert path.read_bytes()[:6] in (b"GIF87a", b"GIF89a"), "03_flow.gif does not start with a GIF signature"
    with Image.open(path) as im:
        assert im.n_frames >= 5, f"the animation has {im.n_frames} frames"
        first = np.asarray(im.convert("L"), dtype=float)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("L"), dtype=float)
    assert np.abs(first - last).mean() > 0.5, "the first and last frames are the same: nothing flows"


@pytest.mark.slow
def test_chapter1_numbers(runs) -> None:
    n = _nums(runs, 1)
    for s in ("vp_linear", "cosine", "log_snr_linear"):
        # Monte Carlo moments of q(x_t | x_0) against the closed form (1500 points: a few percent)
        assert abs(_get(n, f"{s}: max var(x_t) / (ab var(x_0) + 1 - ab)") - 1.0) < 0.1, s
        assert _get(n, f"{s}: max |mean(x_t) - sqrt(ab) mean(x_0)|") < 0.1, s
        # almost nothing of the data survives at t_max, and the KL to the prior is a KL
        assert 0.0 < _get(n, f"{s}: alpha_bar(t_max)") < 1e-4, s
        assert 0.0 <= _get(n, f"{s}: KL(q(x_tmax|x_0) || N(0,I)) in nats") < 1e-2, s
        assert 0.1 < _get(n, f"{s}: t where SNR = 1") < 0.9, s
    assert abs(_get(n, "two-step residual / sigma(t): variance") - 1.0) < 0.1
    assert _get(n, "alpha_bar[0] (clean data)") == 1.0
    assert 0.0 < _get(n, "max |beta_i - beta_i(DDPM)|") < 1e-3  # close, not equal


@pytest.mark.slow
def test_chapter2_identities_hold_to_rounding(runs) -> None:
    n = _nums(runs, 2)
    exact = {
        "max relative |log q(x_s|x_t,x_0) - Bayes' rule|": 1e-10,
        "max relative |q_posterior - precision-weighted form|": 1e-9,
        "max difference, discrete (Ho Eq. 7) vs continuous posterior": 1e-9,
        "max relative |KL - Ho Eq. 12 weight * |eps - eps_hat|^2|": 1e-9,
        "max relative |KL closed form - quadrature|": 1e-8,
        "max |sum_v p(v) - 1|": 1e-12,
        "max |eps -> x0 -> v -> score -> eps - eps|": 1e-12,
        "max relative |score - finite difference of log q(x_t|x_0)|": 1e-7,
    }
    for name, tol in exact.items():
        assert 0.0 <= _get(n, name) < tol, f"{name} = {n[name]}, expected below {tol}"
    for name in ("regression slope / closed-form coefficient of x_t", "residual variance / closed-form posterior variance"):
        assert abs(_get(n, name) - 1.0) < 0.1, f"{name} = {n[name]}"
    assert math.isclose(_get(n, "KL of two Gaussians 1e-12 apart in log-variance"), 0.25e-24, rel_tol=1e-6)


@pytest.mark.slow
def test_chapter3_numbers(runs) -> None:
    n = _nums(runs, 3)
    # the oracle's Monte Carlo loss and the floor D - E|eps*|^2 are two estimates of one number
    assert abs(_get(n, "Monte Carlo loss of the oracle, E|eps - eps*|^2 / D") - _get(n, "floor (D - E|eps*|^2) / D")) < 0.05
    for pred in ("0.9 eps*", "1.1 eps*", "eps* + 0.1", "zero"):
        assert _get(n, f"extra loss of the predictor {pred!r}") > 0.0, pred
    for sampler in ("DDPM", "DDIM", "ODE", "SDE"):
        assert abs(_get(n, f"8gaussians: {sampler} mean log p(samples) + H")) < 0.3, sampler
        assert _get(n, f"checkerboard: {sampler} fraction of samples on the squares") > 0.97, sampler
        assert _get(n, f"8gaussians: {sampler} energy distance to data") < 0.05, sampler
    # memorization: the empirical oracle's ODE samples are training points; fresh data is not
    assert _get(n, "empirical oracle, ODE: fraction within 1e-3 of a training point") > 0.95
    assert _get(n, "empirical oracle, ODE: distinct training points reached") >= 30
    assert _get(n, "fresh data: fraction within 1e-3 of a training point") < 0.05
    assert _get(n, "empirical oracle, ODE: median distance to the nearest training point") < 1e-6
    assert _get(n, "fresh data: median distance to the nearest training point") > 0.01


@pytest.mark.slow
def test_chapter4_gradients_and_training(runs) -> None:
    n = _nums(runs, 4)
    assert _get(n, "tiny network: max relative |hand gradient - central difference|") < 1e-5
    assert _get(n, "MLP: max relative |hand gradient - central difference|") < 1e-4
    assert _get(n, "MLP: relative |grad . d - directional difference|") < 1e-6
    assert _get(n, "MLP: max relative |JVP - finite difference|") < 1e-6
    assert _get(n, "MLP: max relative |exact trace - finite-difference trace|") < 1e-6
    assert _get(n, "final loss (mean of the last 5% of steps)") < _get(n, "first loss")
    assert -0.1 < _get(n, "final loss - best possible") < 0.5  # at the floor within noise, never far below it
    assert -1.0 < _get(n, "ODE: mean log p(samples) + H") < 0.3  # a coarse quick model, but eight modes
    assert _get(n, "max |eps(saved model) - eps(model)|") == 0.0
    assert (runs[0] / "04_model_quick.npz").is_file()


@pytest.mark.slow
def test_chapter5_likelihoods(runs) -> None:
    proc = _result(runs, 5)
    assert "loaded" in proc.stdout, "chapter 5 did not reuse chapter 4's model"
    n = _nums(runs, 5)
    # the exact denoiser: the ODE recovers the true density point by point, the bound sits above on average
    assert abs(_get(n, "oracle ODE: paired gap")) < 1e-3
    assert _get(n, "oracle ODE: max |log p_ODE - log p_true| over the points") < 1e-2
    assert -0.3 < _get(n, "oracle VLB: paired gap") < 0.5
    assert _get(n, "oracle VLB, small variance: paired gap") > _get(n, "oracle VLB: paired gap")
    assert 0.0 < _get(n, "oracle VLB: prior term L_T") < 1e-2
    assert -0.1 < _get(n, "MLP ODE: paired gap") < 1.0
    # no network beats the exact denoiser's expected bound (each term is minimized by eps*); paired draws
    assert -0.02 < _get(n, "MLP VLB - oracle VLB, paired") < 1.0
    for name in ("8gaussians", "checkerboard", "rings", "circles"):
        assert abs(_get(n, f"{name}: paired gap of the oracle ODE")) < 1e-2, name
        assert 1.5 < _get(n, f"{name}: H") < 4.0, name
    assert abs(_get(n, "pinwheel: mean -log p_true (no oracle)") - _get(n, "pinwheel: H")) < 0.3
    # the reverse variance: the per-point trace variance beats the fixed ones on the same draws of x_t
    for name in ("oracle", "MLP"):
        assert _get(n, f"{name} VLB, trace - large, paired") < 0.0, name
        assert _get(n, f"{name} VLB, small variance: paired gap") > _get(n, f"{name} VLB, trace variance: paired gap")
    # integration by parts, E||eps||^2 = sigma E[tr d eps/dx]: within 5 standard errors of the quick run's 200 points
    assert abs(_get(n, "oracle at t = 0.1: E||eps||^2 / D - sigma E[tr d eps/dx] / D")) < 0.15


@pytest.mark.slow
def test_chapter6_units_and_baselines(runs) -> None:
    n = _nums(runs, 6)
    assert (_get(n, "training images"), _get(n, "test images"), _get(n, "dimensions D"), _get(n, "grey levels K")) == (
        1437, 360, 64, 17)
    assert _get(n, "bin width 2/(K-1)") == 0.125
    # the uniform density on the bins, converted by density_to_bpd, is log2(17) bits/dim (printed to 6 digits)
    for name in ("uniform model through density_to_bpd (bits/dim)", "log2(17)"):
        assert abs(_get(n, name) - math.log2(17)) < 1e-5, f"{name} = {n[name]}, log2(17) = {math.log2(17)}"
    # Jensen: the dequantized bound is above -log2 P(v) for every image; opening the edge bins only adds mass
    exact = _get(n, "per-pixel Gaussian, exact bin masses (bits/dim)")
    assert _get(n, "min over test images of bound - exact (bits/dim)") >= 0.0
    assert _get(n, "per-pixel Gaussian, dequantized bound (bits/dim)") >= exact
    assert _get(n, "per-pixel Gaussian, edge bins open to +-infinity (bits/dim)") <= exact
    # the baselines issue 9 measured on the same split with its own code (2.431; 2.954 from one dequantization draw,
    # the chapter takes the expectation over u in closed form)
    assert abs(_get(n, "per-pixel categorical: test (bits/dim)") - 2.431) < 5e-3
    assert abs(_get(n, "full-covariance Gaussian: test (bits/dim)") - 2.954) < 0.02


@pytest.mark.slow
def test_chapter6_quick_model_beats_the_uniform_baseline_by_both_estimators(runs) -> None:
    n = _nums(runs, 6)
    assert _get(n, "final loss (mean of the last 5% of steps)") < _get(n, "first loss")
    for split in ("test", "train"):
        assert _get(n, f"{split}: ODE images diverged") == 0, split
        # 1,500 steps at width 128 land near 3.1 bits/dim (--seed 0-5: 2.96-3.13, s.e. ~0.07 on 12 images)
        for est in ("exact ODE", "VLB"):
            value = _get(n, f"{split}: {est} (bits/dim)")
            assert 1.0 < value < math.log2(17), f"{split} {est}: {value} bits/dim, uniform is {math.log2(17):.3f}"
    for est in ("ODE", "VLB"):  # a short run cannot memorize the training images: no train/test gap to speak of
        assert abs(_get(n, f"{est}: test - train (bits/dim)")) < 0.5, est
    assert 0.0 <= _get(n, "VLB test: prior term L_T (bits/dim)") < 1e-3
    assert 0.0 < _get(n, "VLB test: share in the decoder L_0") < 1.0
    assert 0.0 < _get(n, "VLB test: share in the first 5 KL terms L_1..L_5") < 1.0
    # samples are not copies of training images (a copy would be at distance 0)
    assert _get(n, "samples: median RMS distance to the nearest training image") > 0.05
    # section 9: a variance per pixel tightens the bound of the recipe's chain over one per step (quick run: 0.028 +- 0.001)
    assert _get(n, "analytic - diagonal, paired (bits/dim)") > 0.0
    assert _get(n, "diagonal: bound (bits/dim)") < _get(n, "large: bound (bits/dim)")
    assert (runs[0] / "06_model_quick.npz").is_file()


@pytest.mark.slow
def test_chapter7_orders_exact_kl_and_where_the_error_is_made(runs) -> None:
    n = _nums(runs, 7)
    for name in ("ddim (uniform grid)", "dpmpp2m (log_snr grid)"):  # ten evaluations land near the flow's end, not on it
        assert 0.01 < _get(n, f"{name}, 10 evaluations: median distance to the exact flow") < 0.5, name
    # on Gaussian data the flow is linear and exact: each method's stated order (3M's full weight converges faster)
    for name, (lo, hi) in {"ddim": (0.8, 1.2), "euler": (0.8, 1.3), "heun": (1.7, 2.3), "edm": (1.7, 2.3),
                           "dpm2": (1.7, 2.3), "dpmpp2m": (1.7, 2.3), "unipc": (2.7, 3.3), "dpmpp3m": (2.7, 4.5)}.items():
        assert lo < _get(n, f"{name}: observed order") < hi, name
    for s in ("8gaussians", "checkerboard"):
        assert 0.0 <= _get(n, f"{s}: KL of the exact flow (RK45)") < 1e-5, s  # the prior's mismatch only
        # E[q / p_F] = 1 for a right density: every row within 5 standard errors
        checks = {k: v for k, v in n.items() if k.startswith(f"{s}: ") and "E[q/p_F] - 1" in k}
        assert len(checks) >= 21 and all(abs(v) < 5 for v in checks.values()), checks
        assert _get(n, f"{s}: dpmpp2m (log_snr) KL at 20 evaluations") < _get(n, f"{s}: ddim (uniform) KL at 20 evaluations")
        assert _get(n, f"{s}: unipc (log_snr) KL at 20 evaluations") < 0.01, s
    # thin rings: the error is made at small noise; 8gaussians' fat blobs: at large noise
    assert _get(n, "rings: KL with coarse clean half (5 DPM-Solver++(2M) steps)") > 2 * _get(
        n, "rings: KL with coarse noisy half (5 DPM-Solver++(2M) steps)")
    assert _get(n, "8gaussians: KL with coarse noisy half (5 DPM-Solver++(2M) steps)") > _get(
        n, "8gaussians: KL with coarse clean half (5 DPM-Solver++(2M) steps)")
    # dpmpp3m's order 4 above is the t_min -> 0 boundary: stopped at t_min = 0.1 it is the stated 3
    assert 2.7 < _get(n, "dpmpp3m at t_min = 0.1: observed order") < 3.3
    # a sampler that folds space has no density there: its row says so instead of passing for a KL
    # (EDM at 10 evaluations folds 57 of the 400 points of 8gaussians; DPM-Solver++(2M) none)
    stdout = _result(runs, 7).stdout
    for s in ("8gaussians", "checkerboard"):
        assert re.search(rf"^  {s}: edm \(karras\) KL at 10 evaluations: not estimable \(folded [\d.]+%\)$",
                         stdout, re.M), s
        assert not re.search(rf"^  {s}: dpmpp2m \(log_snr\) KL at 20 evaluations.*not estimable", stdout, re.M), s
    # step times chosen by the exact KL beat every fixed grid on the same fresh points, and the thin rings' last
    # steps sit further into the clean end than 8gaussians' fat blobs'
    for s in ("8gaussians", "rings"):
        for k in (5, 10):
            fixed = [v for g in ("uniform", "log_snr", "karras", "quadratic")
                     if (v := n.get(f"{s}: dpmpp2m ({g}) KL at {k} evaluations")) is not None]
            assert fixed and _get(n, f"{s}: dpmpp2m (optimized) KL at {k} evaluations") < min(fixed), (s, k)
    assert _get(n, "rings: optimized steps, last two interior log-SNRs") > _get(
        n, "8gaussians: optimized steps, last two interior log-SNRs")


@pytest.mark.slow
def test_chapter8_guidance(runs) -> None:
    n = _nums(runs, 8)
    for name in ("max |log q_t(x) - log sum_y pi_y q_t(x|y)|", "max |sum_y q_t(y|x) - 1|",
                 "max |score(x|y) - score(x) - grad log q_t(y|x)|", "exact classifier, scale 1: max |eps - eps(x, t, y)|",
                 "exact classifier, scale 3: max |eps - classifier-free w = 2|"):
        assert 0.0 <= _get(n, name) < 1e-10, f"{name} = {n[name]}"
    # the guided ODE of the exact conditional (w = 0) samples p(x | y): KL 0 within Monte Carlo error; guidance moves away
    assert abs(_get(n, "w = 0: KL(ODE || p_w)")) < 0.01
    assert 0.5 < _get(n, "w = 1: KL(ODE || p_w)") < _get(n, "w = 4: KL(ODE || p_w)")
    assert abs(_get(n, "w = 0: mean log p_w of DDPM samples + H(p_w)")) < 0.3
    assert _get(n, "w = 4: mean log p_w of ODE samples + H(p_w)") < -1.0  # the ODE leaves p_w's bulk
    assert _get(n, "Gaussian, w = 2: max |sampler - closed-form affine map|") < 1e-6
    assert _get(n, "Gaussian, w = 2: guided ODE variance / tilted variance, first coordinate") < 0.5
    # a small conditional network: each class near its truth, guidance lands on the label
    assert -0.1 < _get(n, "conditional: paired gap, mean over classes") < 0.3
    assert -0.1 < _get(n, "unconditional mode (y = None): paired gap") < 1.0
    assert _get(n, "trained model, w = 4: share of samples nearest their label's centre") > 0.9
    assert _get(n, "classifier accuracy on clean points") > 0.95
    assert _get(n, "classifier guidance (s = 1) of the unconditional mode: share nearest their label") > 0.8
    # the digits: the reader is a good classifier; guidance raises the share of recognized samples
    assert _get(n, "logistic regression: accuracy on real test digits") > 0.9
    assert _get(n, "digits, w = 4: share classified as their label") >= _get(n, "digits, w = 0: share classified as their label")
    assert _get(n, "digits, w = 0: share classified as their label") > 0.5
    assert 1.0 < _get(n, "digits: conditional test bits/dim") < 4.087


@pytest.mark.slow
@pytest.mark.parametrize("number", [5, 6, 7, 8, 9, 10, 11])
def test_chapters_print_file_names_not_paths(runs, number: int) -> None:
    # the figures and models go to --out; a chapter names the file, never the folder it was run with
    stdout = _result(runs, number).stdout
    named = [line for line in stdout.splitlines() if line.startswith(("figure: ", "  loaded ", "  saved "))]
    assert named, f"chapter {number} names no file it wrote or read"
    for line in named:
        assert str(runs[0]) not in line and "/" not in line.split(" (")[0], line


@pytest.mark.parametrize("number", [5, 6, 7, 8, 9, 10, 11])
def test_chapters_are_gallery_scripts_with_short_code_lines(number: int) -> None:
    # a sphinx-gallery script: an RST title "Chapter N: ..." underlined with "=", then "# %%" cells,
    # and no line wider than the 88 columns a chapter page shows without scrolling
    lines = (REPO / "tutorials" / CHAPTERS[number]).read_text().splitlines()
    title = lines.index(next(line for line in lines if line.startswith("Chapter ")))
    assert lines[title].startswith(f"Chapter {number}: "), lines[title]
    assert set(lines[title + 1]) == {"="} and len(lines[title + 1]) >= len(lines[title]), lines[title + 1]
    assert sum(line.startswith("# %%") for line in lines) >= 5
    wide = [(k + 1, len(line)) for k, line in enumerate(lines) if len(line) > 88]
    assert not wide, f"lines wider than 88 columns: {wide}"


@pytest.mark.slow
def test_chapter10_prompts(runs) -> None:
    n = _nums(runs, 10)
    # the cross-attention by hand is the library's, padded keys weigh nothing, guidance is the stated combination
    assert _get(n, "max |P by hand - P of the library|") < 1e-12
    assert _get(n, "weight on padding keys") == 0.0
    assert _get(n, "max |guided eps - formula|") < 1e-12
    assert _get(n, "attention rows sum to") == pytest.approx(1.0, abs=1e-12)
    assert _get(n, "keys the empty prompt leaves") == 1
    assert _get(n, "training images") == 1388  # 1,437 train digits less the held-out cells
    for split in ("seen", "held out"):  # shares, read from the results file or the chapter's samples
        for what in ("class", "ink", "slant"):
            assert 0.0 <= _get(n, f"{split}, w = 0: {what}") <= 1.0
    # the latent section: guidance on the latent is the stated combination, the bound is the sum of its shares
    assert _get(n, "latent: max |guided eps - formula|") < 1e-12
    assert _get(n, "latent dimension d") < 64
    bound = _get(n, "latent: LSGM bound, bits/dim")
    assert 0.0 < _get(n, "latent: decoder's share") < bound < 8.0  # uniform over 17 levels is 4.09
    assert bound == pytest.approx(_get(n, "latent: decoder's share") + _get(n, "latent: latent's share"), abs=1e-5)


def test_chapter11_editing(runs) -> None:
    n = _nums(runs, 11)
    floor = _get(n, "exact draws: W1 to p(x2 | x1 = 1)")
    assert 0.0 < floor < 0.1
    # with the exact denoiser every method lands within a few tenths of the conditional, none below its floor
    for name in ("replacement", "RePaint (j = 5, r = 5)", "DPS (zeta = 0.1)"):
        assert floor / 2 < _get(n, f"{name}: W1 to p(x2 | x1 = 1)") < 0.5, name
    assert _get(n, "DPS: mean |x1 - a|") > 0.0  # DPS only approaches the known value
    # the pasting methods return the known pixels exactly
    for name in ("replacement", "RePaint"):
        assert _get(n, f"{name}: mean |known pixel - original|") == 0.0, name
    assert _get(n, "DPS: evaluations per completion") == 2 * _get(n, "replacement: evaluations per completion")
    assert _get(n, "static: the entry -0.5") == -0.5
    assert abs(_get(n, "dynamic (p = 0.5): the entry -0.5") + 0.5 / 1.5) < 1e-6  # printed to 6 digits
    assert _get(n, "dynamic (p = 0.5): the entry 3") == 1.0


@pytest.mark.slow
def test_chapter11_glide_and_cascade(runs) -> None:
    n = _nums(runs, 11)
    # the mask-conditioned model reads [y * m | m]: x1 = 1 known, x2 not
    assert _get(n, "GLIDE context [y * m | m]: x1 = 1 known, x2 not") == 1.0
    # what the text says of the results files: the trained conditional is the best of the four at 20 evaluations,
    # and every trained method stays above the floor of exact draws
    for a, where in ((0, "mode"), (1, "between"), (4, "tail")):
        w20 = _get(n, f"GLIDE, x1 = {a} ({where}), 20 evaluations: W1")
        assert 0.0 < w20 < _get(n, f"x1 = {a} ({where}), 20 evaluations: best steering method's W1")
    assert _get(n, "GLIDE model, nothing known: NLL - true NLL (nats)") > 0.0
    # the 4x4 block sums are the 2x2 means exactly, on 65 levels
    assert _get(n, "4x4 digits: levels") == 65
    assert _get(n, "max |2 * block sum / 64 - 1 - 2x2 mean|") == 0.0
    assert 0.1 < _get(n, "sigma(s) at s = 0.05") < 0.3
    assert 0.0 <= _get(n, "SR from test 4x4s: share read as the source digit") <= 1.0
    assert _get(n, "SR: RMS of (2x2 means of the sample - the 4x4 given)") < 1.0
    # augmentation helps the cascade, no cascade beats the single-stage MLP, and the cascade pays more bits
    noaug = _get(n, "cascade, no aug.: Frechet distance")
    wide = _get(n, "cascade, aug. [0, 0.5]: Frechet distance")
    narrow = _get(n, "cascade, aug. [0, 0.1]: Frechet distance")
    single = _get(n, "single-stage MLP: Frechet distance")
    assert min(wide, narrow) < noaug
    assert single < min(wide, narrow, noaug)
    assert _get(n, "cascade, no aug.: bits/dim") > _get(n, "single-stage MLP: bits/dim")

