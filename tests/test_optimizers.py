"""Each optimizer: one step by hand, and the tutorial's J = x**2 + x."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbackprop._optimizers import AdamState, AdamSums, SGDState, adam, resume_adam, sgd


def grad_J(x):
    """Gradient of the tutorial's J = x**2 + x, whose minimum is at x = -1/2."""
    return 2 * x + 1


def descend(optimizer, x0, n_steps, learning_rate):
    params = [np.array([x0])]
    state = optimizer.init(params)
    path = [x0]
    for _ in range(n_steps):
        updates, state = optimizer.update([grad_J(params[0])], state, learning_rate)
        params = [p + u for p, u in zip(params, updates)]
        path.append(float(params[0][0]))
    return np.array(path)


def test_plain_gradient_descent_step_by_hand():
    # x = 2: dJ/dx = 5, so x <- 2 - 0.1 * 5 = 1.5, then 1.5 - 0.1 * 4 = 1.1
    assert_allclose(descend(sgd(), 2.0, 2, 0.1), [2.0, 1.5, 1.1])


def test_momentum_step_by_hand():
    # v = -0.1*5 = -0.5, x = 1.5; g = 4, v = 0.9*(-0.5) - 0.4 = -0.85, x = 0.65
    assert_allclose(descend(sgd(momentum=0.9), 2.0, 2, 0.1), [2.0, 1.5, 0.65])


def test_nesterov_step_by_hand():
    # v = -0.5; update = 0.9*(-0.5) - 0.5 = -0.95, x = 1.05
    # g = 3.1; v = -0.45 - 0.31 = -0.76; update = 0.9*(-0.76) - 0.31 = -0.994, x = 0.056
    path = descend(sgd(momentum=0.9, nesterov=True), 2.0, 2, 0.1)
    assert_allclose(path, [2.0, 1.05, 0.056])


def test_adam_step_by_hand():
    # g = 5: m = 0.5, v = 0.025, lr_t = 0.1 * sqrt(0.001) / 0.1
    # update = -lr_t * 0.5 / (sqrt(0.025) + 1e-8), about -0.1 (Adam's first step is ~lr)
    lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = 2.0 - lr_t * 0.5 / (np.sqrt(0.025) + 1e-8)
    path = descend(adam(), 2.0, 1, 0.1)
    assert path[1] == pytest.approx(expected, rel=1e-14)
    assert path[1] == pytest.approx(1.9, rel=1e-6)


def test_adam_second_step_by_hand():
    b1, b2, lr, eps = 0.8, 0.99, 0.05, 1e-8
    x, m, v = 2.0, 0.0, 0.0
    for t in (1, 2):
        g = 2 * x + 1
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    path = descend(adam(beta_1=b1, beta_2=b2, epsilon=eps), 2.0, 2, lr)
    assert path[2] == pytest.approx(x, rel=1e-14)


@pytest.mark.parametrize(
    "optimizer, learning_rate, n_steps",
    [
        (sgd(), 0.1, 200),
        (sgd(momentum=0.9), 0.05, 400),
        (sgd(momentum=0.9, nesterov=True), 0.05, 400),
        (adam(), 0.1, 2000),
    ],
    ids=["gd", "momentum", "nesterov", "adam"],
)
def test_converges_to_the_minimum_of_x_squared_plus_x(optimizer, learning_rate, n_steps):
    path = descend(optimizer, 3.0, n_steps, learning_rate)
    assert path[-1] == pytest.approx(-0.5, abs=1e-6)


def test_too_large_a_step_bounces_across_the_valley():
    # x - (-1/2) is multiplied by (1 - 2 lr) each step: with lr = 0.9, by -0.8.
    path = descend(sgd(), 3.0, 10, 0.9)
    sides = np.sign(path + 0.5)
    assert np.all(sides[1:] == -sides[:-1])
    assert path[-1] == pytest.approx(-0.5 + 3.5 * (-0.8) ** 10)
    # and with lr > 1 it bounces ever further out
    assert abs(descend(sgd(), 3.0, 20, 1.1)[-1] + 0.5) > 3.5


def test_too_small_a_step_crawls():
    path = descend(sgd(), 3.0, 100, 1e-3)
    assert np.all(np.diff(path) < 0)  # always downhill ...
    assert path[-1] > 2.0  # ... but nowhere near -1/2 after 100 steps


def test_update_does_not_modify_state_or_gradients():
    params = [np.ones((2, 3)), np.ones(3)]
    grads = [np.full((2, 3), 0.5), np.full(3, -0.5)]
    for optimizer in (sgd(momentum=0.9, nesterov=True), adam()):
        state = optimizer.init(params)
        before = [a.copy() for field in state if isinstance(field, tuple) for a in field]
        updates, new_state = optimizer.update(grads, state, 0.1)
        after = [a for field in state if isinstance(field, tuple) for a in field]
        for a, b in zip(before, after):
            assert_allclose(a, b)
        assert_allclose(grads[0], 0.5)
        assert [u.shape for u in updates] == [(2, 3), (3,)]
        assert type(new_state) is type(state)


def test_state_types():
    params = [np.zeros(2)]
    assert isinstance(sgd().init(params), SGDState)
    state = adam().init(params)
    assert isinstance(state, AdamSums) and state.step == 0
    _, state = adam().update([np.ones(2)], state, 0.1)
    assert state.step == 1


@pytest.mark.parametrize(
    "optimizer",
    [sgd(), sgd(momentum=0.9), sgd(momentum=0.9, nesterov=True), adam(),
     adam(beta_1=0.5, beta_2=0.9, epsilon=1e-3)],
    ids=["gd", "momentum", "nesterov", "adam", "adam-custom"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_in_place_apply_equals_update(optimizer, dtype):
    rng = np.random.RandomState(0)
    params = [rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype)]
    reference = [p.copy() for p in params]
    state, reference_state = optimizer.init(params), optimizer.init(reference)
    for step in range(5):
        grads = [rng.normal(size=p.shape).astype(dtype) for p in params]
        learning_rate = 0.1 / (step + 1)
        updates, reference_state = optimizer.update(grads, reference_state, learning_rate)
        reference = [p + u for p, u in zip(reference, updates)]
        state = optimizer.apply(params, grads, state, learning_rate)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for p, r in zip(params, reference):
        assert p.dtype == dtype
        assert_allclose(p, r, rtol=rtol, atol=rtol)


def test_adam_sums_are_separate_arrays():
    state = adam().init([np.zeros(3)])
    assert state.grad_sum[0] is not state.square_sum[0]


def test_adam_keeps_the_moments_divided_by_one_minus_beta():
    b1, b2 = 0.8, 0.99
    g1, g2 = np.array([5.0, -1.0]), np.array([3.0, 0.5])
    _, state = adam(b1, b2).update([g1], adam(b1, b2).init([np.zeros(2)]), 0.1)
    _, state = adam(b1, b2).update([g2], state, 0.1)
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    assert_allclose(state.grad_sum[0], m / (1 - b1), rtol=1e-14)
    assert_allclose(state.square_sum[0], v / (1 - b2), rtol=1e-14)


@pytest.mark.parametrize("in_place", [False, True], ids=["update", "apply"])
def test_adam_goes_on_from_a_state_of_moments_saved_by_0_1_0(in_place):
    """0.1.0's Adam kept m and v themselves: converted, its state gives the
    step that classic Adam takes from it (computed here by hand)."""
    b1, b2, lr, eps = 0.8, 0.99, 0.05, 1e-8
    x, m, v, t = np.array([2.0, -1.0]), np.array([0.7, -0.2]), np.array([0.3, 0.04]), 3
    g = 2 * x + 1
    m_next = b1 * m + (1 - b1) * g
    v_next = b2 * v + (1 - b2) * g * g
    expected = x - lr * np.sqrt(1 - b2**(t + 1)) / (1 - b1**(t + 1)) * m_next / (
        np.sqrt(v_next) + eps)
    optimizer = adam(beta_1=b1, beta_2=b2, epsilon=eps)
    state = resume_adam(AdamState(step=t, m=(m.copy(),), v=(v.copy(),)), b1, b2)
    assert isinstance(state, AdamSums) and state.step == t
    assert (state.beta_1, state.beta_2) == (b1, b2)
    if in_place:
        params = [x.copy()]
        state = optimizer.apply(params, [g.copy()], state, lr)
        got = params[0]
    else:
        (update,), state = optimizer.update([g], state, lr)
        got = x + update
    assert_allclose(got, expected, rtol=1e-14)
    assert state.step == t + 1


def test_a_numpy_learning_rate_keeps_float32_arithmetic_in_float32():
    """NumPy 2 computes ``float32 array * numpy.float64`` in float64 (and 8x
    slower); the optimizers take a NumPy learning rate, as ``np.logspace``
    gives one, at the parameters' precision: g *= float32(lr), p -= g."""
    rng = np.random.RandomState(0)
    p = rng.normal(size=1000).astype(np.float32)
    g = rng.normal(size=1000).astype(np.float32)
    expected = p - g * np.float32(0.1)
    params = [p.copy()]
    sgd().apply(params, [g.copy()], sgd().init(params), np.float64(0.1))
    assert params[0].dtype == np.float32
    np.testing.assert_array_equal(params[0], expected)


def test_numpy_hyperparameters_give_adam_the_numbers_of_python_floats():
    rng = np.random.RandomState(0)
    p = rng.normal(size=1000).astype(np.float32)
    results = []
    for number in (float, np.float64):
        optimizer = adam(number(0.8), number(0.99), number(1e-3))
        params = [p.copy()]
        state = optimizer.init(params)
        for step in range(3):
            grads = [np.random.RandomState(step).normal(size=1000).astype(np.float32)]
            state = optimizer.apply(params, grads, state, number(0.01))
        results.append(params[0])
    assert results[1].dtype == np.float32
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("in_place", [False, True], ids=["update", "apply"])
def test_adam_with_new_betas_goes_on_from_the_same_moments(in_place):
    """Sums made with betas (0.9, 0.999), resumed with (0.5, 0.9): the next
    step is classic Adam's with the new betas from the same m and v."""
    rng = np.random.RandomState(0)
    old, b1, b2, lr, eps = adam(0.9, 0.999), 0.5, 0.9, 0.05, 1e-8
    x = rng.normal(size=4)
    state = old.init([x])
    for _ in range(3):
        _, state = old.update([rng.normal(size=4)], state, lr)
    m, v = 0.1 * state.grad_sum[0], 0.001 * state.square_sum[0]  # the moments
    g, t = rng.normal(size=4), state.step + 1
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    expected = x - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    before = [a.copy() for a in state.grad_sum + state.square_sum]
    resumed = resume_adam(state, b1, b2)
    for a, b in zip(before, state.grad_sum + state.square_sum):  # the old state untouched
        np.testing.assert_array_equal(a, b)
    assert (resumed.beta_1, resumed.beta_2) == (b1, b2)
    new = adam(b1, b2, eps)
    if in_place:
        params = [x.copy()]
        new.apply(params, [g.copy()], resumed, lr)
        got = params[0]
    else:
        (update,), _ = new.update([g], resumed, lr)
        got = x + update
    assert_allclose(got, expected, rtol=1e-13)


def test_resume_adam_keeps_a_state_of_the_same_betas_and_other_states():
    state = adam(0.8, 0.99).init([np.zeros(2)])
    assert resume_adam(state, 0.8, np.float64(0.99)) is state
    sgd_state = sgd(0.9).init([np.zeros(2)])
    assert resume_adam(sgd_state, 0.8, 0.99) is sgd_state


def test_adams_float32_step_is_computed_in_float32():
    """Adam's step size and epsilon, computed with NumPy, are used as Python
    floats: the step is the float32 arithmetic written out here."""
    rng = np.random.RandomState(0)
    p = rng.normal(size=1000).astype(np.float32)
    g = rng.normal(size=1000).astype(np.float32)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    rate = lr * np.sqrt(1 - b2**1) / (1 - b1**1) * (1 - b1) / np.sqrt(1 - b2)
    f32 = np.float32
    expected = p - g / (np.sqrt(g * g) + f32(eps / np.sqrt(1 - b2))) * f32(rate)
    params = [p.copy()]
    optimizer = adam(b1, b2, eps)
    optimizer.apply(params, [g.copy()], optimizer.init(params), lr)
    assert params[0].dtype == np.float32
    np.testing.assert_array_equal(params[0], expected)


def test_a_numpy_momentum_keeps_float32_arithmetic_in_float32():
    rng = np.random.RandomState(0)
    p = rng.normal(size=1000).astype(np.float32)
    g1, g2 = (rng.normal(size=1000).astype(np.float32) for _ in range(2))
    f32 = np.float32
    v = -f32(0.1) * g1
    v = f32(0.7) * v - f32(0.1) * g2
    expected = p - f32(0.1) * g1 + v
    optimizer = sgd(momentum=np.float64(0.7))
    params = [p.copy()]
    state = optimizer.init(params)
    for g in (g1, g2):
        state = optimizer.apply(params, [g.copy()], state, 0.1)
    np.testing.assert_array_equal(params[0], expected)
