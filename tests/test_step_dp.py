r"""The GITS-style dynamic programme: the cheapest path against exhaustive enumeration, the teacher's costs
against one DDIM step computed by the samplers, and the step times it returns."""

import itertools

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.sample import dpmpp_multistep
from npdiff.sample.ode import solve_flow
from npdiff.sample.step_dp import cheapest_path, dp_steps, teacher_costs


def brute_force(cost: np.ndarray, K: int) -> tuple[float, tuple]:
    N = cost.shape[0] - 1
    best = (np.inf, ())
    for inner in itertools.combinations(range(1, N), K - 1):
        path = (0, *inner, N)
        total = sum(cost[a, b] for a, b in itertools.pairwise(path))
        best = min(best, (total, path))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("K", [1, 2, 3, 5])
def test_cheapest_path_is_the_exhaustive_optimum(seed, K):
    rng = np.random.default_rng(seed)
    N = 9
    cost = rng.exponential(size=(N + 1, N + 1))
    path = cheapest_path(cost, K)
    total, best = brute_force(cost, K)
    assert path[0] == 0 and path[-1] == N and path.size == K + 1 and np.all(np.diff(path) > 0)
    assert sum(cost[a, b] for a, b in itertools.pairwise(path)) == pytest.approx(total, rel=1e-12)
    assert tuple(path) == best  # continuous random costs: the optimum is unique


@pytest.mark.parametrize("N, K", [(12, 3), (12, 4), (20, 5), (20, 20)])
def test_convex_edge_costs_give_equal_steps(N, K):
    # sum of (length)^p over K edges of total length N is least when all lengths are N / K (Jensen)
    i = np.arange(N + 1)
    path = cheapest_path(np.abs(i[None, :] - i[:, None]).astype(float) ** 1.5, K)
    np.testing.assert_array_equal(path, np.arange(0, N + 1, N // K))


def test_forbidden_edges_are_avoided():
    cost = np.ones((5, 5))
    cost[0, 2] = cost[2, 4] = 0.1  # the cheap path
    cost[1, 3] = np.inf
    np.testing.assert_array_equal(cheapest_path(cost, 2), [0, 2, 4])
    cost[0, :] = np.inf
    with pytest.raises(ValueError, match="no path of 2 finite-cost edges"):
        cheapest_path(cost, 2)


@pytest.mark.parametrize("cost, K, match", [
    (np.ones((4, 3)), 2, "square"),
    (np.ones((4, 4)), 4, "steps"),
    (np.full((4, 4), np.nan), 2, "NaN"),
])
def test_bad_costs_are_refused(cost, K, match):
    with pytest.raises(ValueError, match=match):
        cheapest_path(cost, K)


@pytest.fixture(scope="module")
def gauss_costs():
    data = GaussianData(np.array([1.5, -0.5]), 0.1)
    return data, teacher_costs(data, 0, n=40, fine_steps=10, rtol=1e-9, atol=1e-9)


def test_teacher_costs_are_one_ddim_step_from_the_teacher(gauss_costs):
    # independently: the teacher by RK45 straight from t_max to s_i, the student step by the multistep solver of order 1
    data, costs = gauss_costs
    z = np.random.default_rng(0).standard_normal((40, 2))
    for i, j in [(0, 1), (0, 10), (3, 7), (8, 10)]:
        x_i = z if i == 0 else solve_flow(data, z, 1.0, float(costs.times[i]), rtol=1e-10, atol=1e-10).x
        x_j = solve_flow(data, z, 1.0, float(costs.times[j]), rtol=1e-10, atol=1e-10).x
        step = dpmpp_multistep(data, x_i, costs.times[[i, j]], order=1).x
        np.testing.assert_allclose(costs.cost[i, j], np.linalg.norm(step - x_j, axis=1).mean(), rtol=1e-5, atol=1e-9,
                                   err_msg=f"i={i}, j={j}")
    assert np.all(np.isinf(costs.cost[np.tril_indices(11)]))


def test_dp_steps_are_a_subgrid_of_least_cost(gauss_costs):
    _, costs = gauss_costs
    times = dp_steps(costs, "dpmpp2m", 4)
    idx = np.searchsorted(-costs.times, -times)
    np.testing.assert_array_equal(costs.times[idx], times)
    total = sum(costs.cost[a, b] for a, b in itertools.pairwise(idx))
    assert total <= brute_force(costs.cost, 4)[0] * (1 + 1e-12)
    relative = dp_steps(costs, "dpmpp2m", 4, relative=True)
    assert relative.shape == (5,) and relative[0] == costs.times[0] and relative[-1] == costs.times[-1]


def test_dp_steps_count_the_samplers_steps(gauss_costs):
    _, costs = gauss_costs
    assert dp_steps(costs, "heun", 8).shape == (5,)  # 8 evaluations of heun: 4 steps
    with pytest.raises(ValueError, match=r"steps must be an integer in 1..10, got 12"):
        dp_steps(costs, "dpmpp2m", 12)
    with pytest.raises(TypeError, match="TeacherCosts"):
        dp_steps(np.ones((3, 3)), "dpmpp2m", 2)


def test_the_examples_of_the_module_run():
    import doctest
    import inspect

    from npdiff.sample import step_dp

    result = doctest.testmod(step_dp, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
    missing = [n for n in step_dp.__all__ if inspect.isfunction(getattr(step_dp, n))
               and "Examples\n" not in (inspect.getdoc(getattr(step_dp, n)) or "")]
    assert not missing, missing
