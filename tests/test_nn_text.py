"""The text encoder, cross-attention and the prompt-conditioned MLP: hand gradients and tangents against
float64 central differences, padding, the exact divergence, and the denoiser protocol."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.data.prompts import DIGIT_VOCABULARY, tokenize
from npdiff.denoiser import call_eps_jvp, call_eps_vjp, check_denoiser
from npdiff.guidance import ClassifierFree
from npdiff.nn import prompt_mlp as pm
from npdiff.nn import text
from npdiff.objective import noisy_batch
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer

H = 1e-6  # central-difference step: error O(H^2) against rounding O(1e-16 / H)
RTOL = 1e-6


def _close(fd, exact, loss):
    # relative error RTOL, plus the central difference's rounding, about 1e-16 |L| / H = 1e-10 |L| (times 100):
    # an exactly zero derivative (the key bias: softmax ignores a shift) is then compared fairly
    return abs(fd - exact) <= RTOL * max(abs(fd), abs(exact)) + 1e-8 * (1.0 + abs(loss))


def _attn_params(rng, c_q, c_kv, width, c_out):
    shapes = {"Wq": (c_q, width), "bq": (width,), "Wk": (c_kv, width), "bk": (width,), "Wv": (c_kv, width),
              "bv": (width,), "Wo": (width, c_out), "bo": (c_out,)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def _directional(f, arrays, name, rng):
    # (f(a + h d) - f(a - h d)) / 2h for a random direction d of arrays[name]; returns (d, difference)
    d = rng.standard_normal(arrays[name].shape)
    base = arrays[name].copy()
    arrays[name] = base + H * d
    up = f()
    arrays[name] = base - H * d
    down = f()
    arrays[name] = base
    return d, (up - down) / (2 * H), f()


def _mask(rng, B, L):
    mask = rng.uniform(size=(B, L)) < 0.6
    mask[:, 0] = True  # the start token is always a key
    return mask


@pytest.mark.parametrize("seed", [0, 1])
def test_mha_gradients_against_central_differences(seed):
    rng = np.random.default_rng(seed)
    B, N, L, Cq, Ckv, Cout, heads = 2, 3, 5, 4, 6, 4, 2
    a = {"u": rng.standard_normal((B, N, Cq)), "c": rng.standard_normal((B, L, Ckv))}
    p = _attn_params(rng, Cq, Ckv, 4, Cout)
    mask = _mask(rng, B, L)
    R = rng.standard_normal((B, N, Cout))

    def loss():
        return float(np.sum(text.mha(a["u"], a["c"], mask, p, heads)[0] * R))

    g, du, dc = text.mha_backward(R, text.mha(a["u"], a["c"], mask, p, heads)[1], p, heads)
    # q . (k + b_k) shifts every key's score of a query alike, which the softmax ignores: dL/db_k = 0
    np.testing.assert_allclose(g["bk"], 0.0, rtol=0, atol=1e-12)
    for name in p:
        d, fd, L = _directional(loss, p, name, rng)
        assert _close(fd, np.sum(g[name] * d), L), name
    for name, grad in (("u", du), ("c", dc)):
        d, fd, L = _directional(loss, a, name, rng)
        assert _close(fd, np.sum(grad * d), L), name


def test_mha_tangent_against_central_differences():
    rng = np.random.default_rng(3)
    B, N, L, C, heads = 2, 3, 4, 4, 2
    u, c = rng.standard_normal((B, N, C)), rng.standard_normal((B, L, C))
    p, mask = _attn_params(rng, C, C, 4, C), _mask(rng, B, L)
    u_dot, c_dot = rng.standard_normal((2, B, N, C)), rng.standard_normal((2, B, L, C))
    cache = text.mha(u, c, mask, p, heads)[1]
    both = text.mha_tangent(u_dot, cache, p, heads, c_dot=c_dot)
    only_u = text.mha_tangent(u_dot, cache, p, heads)
    for k in range(2):
        fd = (text.mha(u + H * u_dot[k], c + H * c_dot[k], mask, p, heads)[0]
              - text.mha(u - H * u_dot[k], c - H * c_dot[k], mask, p, heads)[0]) / (2 * H)
        np.testing.assert_allclose(both[k], fd, rtol=0, atol=1e-7 * np.abs(fd).max())
        fd = (text.mha(u + H * u_dot[k], c, mask, p, heads)[0] - text.mha(u - H * u_dot[k], c, mask, p, heads)[0]) / (2 * H)
        np.testing.assert_allclose(only_u[k], fd, rtol=0, atol=1e-7 * np.abs(fd).max())


def test_masked_keys_do_not_change_the_attention():
    rng = np.random.default_rng(4)
    B, N, L, C = 2, 3, 5, 4
    u, c, p = rng.standard_normal((B, N, C)), rng.standard_normal((B, L, C)), _attn_params(rng, C, C, 4, C)
    mask = np.array([[True, True, False, True, False]] * 2)
    c2 = c.copy()
    c2[:, [2, 4]] = 100.0 * rng.standard_normal((B, 2, C))  # whatever sits at a masked key
    out, cache = text.mha(u, c, mask, p, 2)
    np.testing.assert_array_equal(out, text.mha(u, c2, mask, p, 2)[0])
    assert np.all(cache["P"][..., [2, 4]] == 0.0)
    dc = text.mha_backward(rng.standard_normal(out.shape), cache, p, 2)[2]
    assert np.all(dc[:, [2, 4]] == 0.0)


def test_rms_norm_gradient_and_tangent():
    rng = np.random.default_rng(5)
    a = {"x": rng.standard_normal((2, 3, 6)), "g": rng.standard_normal(6)}
    R = rng.standard_normal((2, 3, 6))

    def loss():
        return float(np.sum(text.rms_norm(a["x"], a["g"])[0] * R))

    r = text.rms_norm(a["x"], a["g"])[1]
    dg, dx = text.rms_norm_backward(R, a["x"], r, a["g"])
    for name, grad in (("x", dx), ("g", dg)):
        d, fd, L = _directional(loss, a, name, rng)
        assert _close(fd, np.sum(grad * d), L), name
    x_dot = rng.standard_normal((2, 3, 6))
    fd = (text.rms_norm(a["x"] + H * x_dot, a["g"])[0] - text.rms_norm(a["x"] - H * x_dot, a["g"])[0]) / (2 * H)
    np.testing.assert_allclose(text.rms_norm_tangent(x_dot, a["x"], r, a["g"]), fd, rtol=0, atol=1e-8)


def _encoder(rng, V=19, C=4, Lmax=5):
    return {"tok": rng.standard_normal((V, C)), "pos": rng.standard_normal((Lmax, C)), "g": 1.0 + 0.3 * rng.standard_normal(C)}


def test_encoder_gradients_against_central_differences():
    rng = np.random.default_rng(6)
    emb, p = _encoder(rng), _attn_params(rng, 4, 4, 4, 4)
    ids = tokenize(["bold seven slanted right", "two", ""])  # (3, 4)
    R = rng.standard_normal((3, 5, 4)) * text.key_mask(ids)[:, :, None]  # reads the keys only, as cross-attention does

    def loss():
        return float(np.sum(text.encode(ids, emb["tok"], emb["pos"], emb["g"], p, 2)[0] * R))

    cache = text.encode(ids, emb["tok"], emb["pos"], emb["g"], p, 2)[2]
    dtok, dpos, dg, gp = text.encode_backward(R, cache, emb["tok"], emb["pos"], emb["g"], p, 2)
    for name, grad in (("tok", dtok), ("pos", dpos), ("g", dg)):
        d, fd, L = _directional(loss, emb, name, rng)
        assert _close(fd, np.sum(grad * d), L), name
    for name in p:
        d, fd, L = _directional(loss, p, name, rng)
        assert _close(fd, np.sum(gp[name] * d), L), name
    assert np.all(dtok[0] == 0.0)  # the padding id is never read through a key


def test_encoder_tangent_against_central_differences():
    rng = np.random.default_rng(7)
    emb, p = _encoder(rng), _attn_params(rng, 4, 4, 4, 4)
    ids = tokenize(["thin one upright", "nine"])
    c, mask, cache = text.encode(ids, emb["tok"], emb["pos"], emb["g"], p, 2)
    X = cache["X"]
    X_dot = rng.standard_normal((2, *X.shape))

    def from_embeddings(X):  # the encoder after the embedding, re-run on moved embeddings
        h, _ = text.rms_norm(X, emb["g"])
        return X + text.mha(h, h, mask, p, 2)[0]

    np.testing.assert_allclose(from_embeddings(X), c, rtol=0, atol=1e-14)
    got = text.encode_tangent(X_dot, cache, emb["g"], p, 2)
    for k in range(2):
        fd = (from_embeddings(X + H * X_dot[k]) - from_embeddings(X - H * X_dot[k])) / (2 * H)
        np.testing.assert_allclose(got[k], fd, rtol=0, atol=1e-7 * np.abs(fd).max())


def test_cross_attention_gradient_and_tangent():
    rng = np.random.default_rng(8)
    B, Q, Cq, L, C = 3, 4, 2, 5, 4
    a = {"z": rng.standard_normal((B, Q, Cq)), "c": rng.standard_normal((B, L, C))}
    p, mask = _attn_params(rng, Cq, C, C, Cq), _mask(rng, B, L)
    R = rng.standard_normal((B, Q, Cq))

    def loss():
        return float(np.sum(text.cross_attention(a["z"], a["c"], mask, p, 2)[0] * R))

    _, cache = text.cross_attention(a["z"], a["c"], mask, p, 2)
    gp, dz, dc = text.cross_attention_backward(R, cache, p, 2)
    for name, grad in (("z", dz), ("c", dc)):
        d, fd, L = _directional(loss, a, name, rng)
        assert _close(fd, np.sum(grad * d), L), name
    for name in p:
        d, fd, L = _directional(loss, p, name, rng)
        assert _close(fd, np.sum(gp[name] * d), L), name
    z_dot = rng.standard_normal((2, B, Q, Cq))
    got = text.cross_attention_tangent(z_dot, cache, p, 2)
    for k in range(2):
        fd = (text.cross_attention(a["z"] + H * z_dot[k], a["c"], mask, p, 2)[0]
              - text.cross_attention(a["z"] - H * z_dot[k], a["c"], mask, p, 2)[0]) / (2 * H)
        np.testing.assert_allclose(got[k], fd, rtol=0, atol=1e-7 * np.abs(fd).max())


# -- the whole prompt-conditioned network ---------------------------------------------------------
CFG = pm.PromptMLPConfig(dim=6, width=8, depth=2, emb_dim=4, coords="raw+sinusoidal", coord_scale=2.0,
                         text_width=4, query_tokens=2)
IDS = tokenize(["bold seven slanted right", "two upright", ""])


def _theta(seed=0):
    # random weights of the scale of a trained network (initialization alone leaves the cross-attention weak)
    return 0.5 * np.random.default_rng(seed).standard_normal(CFG.n_params)


def _xt(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, 6)), np.array([0.1, 0.5, 0.9])


@pytest.mark.parametrize("seed", range(4))
def test_network_gradient_by_random_directions(seed):
    rng = np.random.default_rng(seed)
    th, (x, t) = _theta(seed), _xt(seed)
    target, w = rng.standard_normal(x.shape), np.array([0.5, 1.0, 2.0])
    L, grad = pm.loss_and_grad(CFG, th, x, t, target, w, IDS)
    for _ in range(3):
        d = rng.standard_normal(th.shape)
        fd = (pm.loss_and_grad(CFG, th + H * d, x, t, target, w, IDS)[0]
              - pm.loss_and_grad(CFG, th - H * d, x, t, target, w, IDS)[0]) / (2 * H)
        assert _close(fd, grad @ d, L)
    # each block of the layout on its own: every MLP layer's W, then the named text arrays
    layers_g, named_g = CFG.views(grad)
    for key in [*range(len(layers_g)), *named_g]:
        d = np.zeros_like(th)
        layers_d, named_d = CFG.views(d)
        view, block = (layers_d[key][0], layers_g[key][0]) if isinstance(key, int) else (named_d[key], named_g[key])
        view[...] = rng.standard_normal(view.shape)
        fd = (pm.loss_and_grad(CFG, th + H * d, x, t, target, w, IDS)[0]
              - pm.loss_and_grad(CFG, th - H * d, x, t, target, w, IDS)[0]) / (2 * H)
        assert _close(fd, np.sum(block * view), L), key


def test_network_input_vjp_and_jvp_against_central_differences():
    rng = np.random.default_rng(9)
    th, (x, t) = _theta(1), _xt(2)
    u, v = rng.standard_normal(x.shape), rng.standard_normal((2, *x.shape))
    _, vjp = pm.vjp(CFG, th, x, t, u, IDS)
    _, jv = pm.jvp(CFG, th, x, t, v, IDS)
    for k in range(2):
        fd = (pm.forward(CFG, th, x + H * v[k], t, IDS)[0] - pm.forward(CFG, th, x - H * v[k], t, IDS)[0]) / (2 * H)
        np.testing.assert_allclose(jv[k], fd, rtol=0, atol=1e-7 * np.abs(fd).max())
        # u^T J v both ways, per point
        np.testing.assert_allclose(np.sum(vjp * v[k], axis=1), np.sum(u * jv[k], axis=1), rtol=1e-10, atol=1e-12)


def test_divergence_is_the_trace_of_a_finite_difference_jacobian():
    th, (x, t) = _theta(2), _xt(3)
    _, div = pm.divergence(CFG, th, x, t, IDS)
    D = x.shape[1]
    trace = np.zeros(x.shape[0])
    for d in range(D):
        e = np.zeros_like(x)
        e[:, d] = H
        trace += (pm.forward(CFG, th, x + e, t, IDS)[0][:, d] - pm.forward(CFG, th, x - e, t, IDS)[0][:, d]) / (2 * H)
    np.testing.assert_allclose(div, trace, rtol=1e-7, atol=1e-8)


def test_padding_does_not_change_the_output():
    th, (x, t) = _theta(3), _xt(4)
    short = tokenize(["bold seven", "two", ""])  # (3, 2)
    long = tokenize(["bold seven", "two", ""], length=4)  # (3, 4)
    np.testing.assert_allclose(pm.forward(CFG, th, x, t, long)[0], pm.forward(CFG, th, x, t, short)[0], rtol=0, atol=1e-13)
    # the padding id's embedding is never read
    th2 = th.copy()
    CFG.views(th2)[1]["tok"][0] += 10.0
    np.testing.assert_allclose(pm.forward(CFG, th2, x, t, long)[0], pm.forward(CFG, th, x, t, long)[0], rtol=0, atol=1e-13)
    # the empty prompt is y = None, and a prompt changes the output
    none = pm.forward(CFG, th, x, t, None)[0]
    np.testing.assert_allclose(pm.forward(CFG, th, x, t, tokenize([""] * 3))[0], none, rtol=0, atol=1e-13)
    assert np.abs(pm.forward(CFG, th, x, t, tokenize("seven")[0])[0] - none).max() > 1e-3


def test_the_denoiser_protocol():
    sched = vp_linear()
    model = pm.PromptMLP(CFG, sched, _theta(4))
    assert check_denoiser(model) is sched and model.num_classes == 0 and model.dim == 6
    x, t = _xt(5)
    eps, div = model.eps_and_divergence(x, t, IDS)
    np.testing.assert_allclose(eps, model.eps(x, t, IDS), rtol=0, atol=1e-14)
    np.testing.assert_allclose(div, pm.divergence(CFG, model.params, x, t, IDS)[1], rtol=0, atol=1e-12)
    v = np.random.default_rng(0).standard_normal((3, 2, 6))
    _, jv = call_eps_jvp(model, x, t, v, IDS)
    np.testing.assert_allclose(jv, np.swapaxes(pm.jvp(CFG, model.params, x, t, np.swapaxes(v, 0, 1), IDS)[1], 0, 1),
                               rtol=0, atol=1e-12)
    _, vjp = call_eps_vjp(model, x, t, v[:, 0], IDS)
    np.testing.assert_allclose(vjp, pm.vjp(CFG, model.params, x, t, v[:, 0], IDS)[1], rtol=0, atol=1e-12)
    one = tokenize("bold seven")[0]  # one prompt (L,) for the whole batch
    np.testing.assert_allclose(model.eps(x, t, one), model.eps(x, t, np.tile(one, (3, 1))), rtol=0, atol=1e-14)


@pytest.mark.parametrize("parameterization", ["x0", "v"])
def test_the_divergence_of_eps_for_other_parameterizations(parameterization):
    cfg = dataclasses.replace(CFG, parameterization=parameterization)
    model = pm.PromptMLP(cfg, vp_linear(), _theta(5))
    x, t = _xt(6)
    _, div = model.eps_and_divergence(x, t, IDS)
    trace = np.zeros(3)
    for d in range(6):
        e = np.zeros_like(x)
        e[:, d] = H
        trace += (model.eps(x + e, t, IDS)[:, d] - model.eps(x - e, t, IDS)[:, d]) / (2 * H)
    np.testing.assert_allclose(div, trace, rtol=1e-7, atol=1e-7)


def test_bad_prompts_and_configs_are_refused():
    model = pm.PromptMLP(CFG, vp_linear(), rng=0)
    x, t = _xt(7)
    with pytest.raises(ValueError, match="start token"):
        model.eps(x, t, np.array([1, 5]))
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.18"):
        model.eps(x, t, np.array([5, 19]))
    with pytest.raises(ValueError, match="shape"):
        model.eps(x, t, np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="shape"):
        model.eps(x, t, np.zeros((3, 5), dtype=int))
    with pytest.raises(TypeError, match="token ids"):
        model.eps(x, t, "bold seven")
    with pytest.raises(ValueError, match="query_tokens must divide width"):
        pm.PromptMLPConfig(width=8, query_tokens=3)
    with pytest.raises(ValueError, match="cross_heads must divide text_width"):
        pm.PromptMLPConfig(text_width=6, cross_heads=4)
    with pytest.raises(ValueError, match="unknown"):
        pm.PromptMLPConfig.from_dict({"widht": 3})
    assert pm.PromptMLPConfig.from_dict(CFG.to_dict()) == CFG
    assert CFG.vocab_size == DIGIT_VOCABULARY.size


def test_the_trainer_steps_a_prompt_mlp_by_its_reference_gradient():
    rng = np.random.default_rng(10)
    X = rng.uniform(-1, 1, (20, 6))

    def sample(n, rng):  # points and their prompts, as a prompt sampler with attribute dropout returns them
        i = rng.integers(0, 20, n)
        return X[i], tokenize(["bold seven", "two upright", ""] * 2, length=4)[:n]

    model = pm.PromptMLP(CFG, vp_linear(), _theta(6).astype(np.float32))
    trainer = Trainer(model, sample, TrainConfig(steps=3, batch_size=6, lr=1e-3), rng=0)
    before = trainer.params.copy()
    # the gradient the trainer's step writes is the reference's, at the weights it holds
    draw = np.random.default_rng(0)
    x0, ids = sample(6, draw)
    t = trainer.times(draw, 6)
    trainer.rng = np.random.default_rng(0)
    trainer.train_step()
    eps = draw.standard_normal((6, 6))
    xt, target, weight = noisy_batch(x0, t, eps, model.schedule, "eps", "eps")
    loss, grad = pm.loss_and_grad(CFG, before, xt, t, target, weight, ids)
    assert trainer.history["loss"][0] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(trainer.grad, grad.astype(np.float32), rtol=1e-6, atol=1e-7)
    assert not np.array_equal(trainer.params, before)
    assert isinstance(trainer.denoiser(), pm.PromptMLP)


def test_a_prompt_mlp_round_trips_through_a_checkpoint(tmp_path):
    X = np.random.default_rng(11).uniform(-1, 1, (20, 6))

    def sample(n, rng):
        return X[rng.integers(0, 20, n)], tokenize(["bold seven", "two upright", ""] * 2, length=4)[:n]

    trainer = Trainer(pm.PromptMLP(CFG, vp_linear(), rng=3), sample, TrainConfig(steps=2, batch_size=6), rng=0)
    trainer.run()
    trainer.save(tmp_path / "prompt.npz")
    ck = checkpoint.load(tmp_path / "prompt.npz", arch="prompt_mlp")
    assert ck.arch == "prompt_mlp" and ck.raw_model.config == CFG and ck.step == 2
    np.testing.assert_array_equal(ck.raw_model.params, trainer.params)
    np.testing.assert_array_equal(ck.model.params, trainer.optimizer.ema)
    x, t = _xt(8)
    np.testing.assert_array_equal(ck.model.eps(x, t, IDS), trainer.denoiser().eps(x, t, IDS))


def test_classifier_free_guidance_with_the_empty_prompt():
    model, w = pm.PromptMLP(CFG, vp_linear(), _theta(7)), 2.5
    x, t = _xt(9)
    guided = ClassifierFree(model, IDS, w)
    eps, div = guided.eps_and_divergence(x, t)
    eps_y, div_y = model.eps_and_divergence(x, t, IDS)
    eps_0, div_0 = model.eps_and_divergence(x, t)  # y = None: the empty prompt
    np.testing.assert_allclose(eps, (1 + w) * eps_y - w * eps_0, rtol=0, atol=1e-13)
    np.testing.assert_allclose(div, (1 + w) * div_y - w * div_0, rtol=0, atol=1e-12)
    trace = np.zeros(3)
    for d in range(6):
        e = np.zeros_like(x)
        e[:, d] = H
        trace += (guided.eps(x + e, t)[:, d] - guided.eps(x - e, t)[:, d]) / (2 * H)
    np.testing.assert_allclose(div, trace, rtol=1e-7, atol=1e-7)
