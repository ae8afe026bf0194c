"""The fused objective equals the reference one, for every network it serves."""

import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from skbackprop._fast import FusedObjective, flat_layout, flat_views, flatten
from skbackprop._network import init_params, objective
from skbackprop._optimizers import adam, sgd
from helpers import blas_limits_now


def problem(output, n_outputs, activation, dtype, seed=0, n_samples=37, sizes=(6, 5, 4)):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, sizes[0])).astype(dtype)
    if output == "softmax":
        Y = np.eye(n_outputs)[rng.randint(0, n_outputs, n_samples)]
    else:
        Y = rng.randint(0, 2, (n_samples, n_outputs)).astype(float)
    layer_sizes = list(sizes) + [n_outputs]
    coefs, intercepts = init_params(layer_sizes, activation, rng, dtype)
    return X, Y.astype(dtype), layer_sizes, coefs, intercepts


def test_a_numpy_alpha_keeps_the_float32_penalty_in_float32():
    """NumPy 2 computes ``float32 array * numpy.float64`` in float64 (and 8x
    slower): an ``alpha`` from NumPy (as a grid search's ``np.logspace``
    gives) makes the same float32 numbers as a Python float."""
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "relu", np.float32,
                                                   sizes=(6, 50))
    theta = flatten(coefs, intercepts, np.float32)
    gradients = []
    for alpha in (0.3, np.float64(0.3)):
        _, (gradient,) = FusedObjective(layer_sizes, "relu", "softmax", alpha, np.float32)(
            [theta], X, Y, None)
        gradients.append(gradient.copy())
    assert gradients[1].dtype == np.float32
    np.testing.assert_array_equal(gradients[0], gradients[1])


def test_flat_layout_puts_all_weights_first():
    coef_slots, intercept_slots, n = flat_layout([3, 4, 2])
    assert coef_slots == [(0, 12, (3, 4)), (12, 20, (4, 2))]
    assert intercept_slots == [(20, 24, (4,)), (24, 26, (2,))]
    assert n == 26


def test_flat_views_share_memory_with_the_vector():
    coefs, intercepts = init_params([3, 4, 2], "relu", np.random.RandomState(0))
    theta = flatten(coefs, intercepts, np.float64)
    views = flat_views(theta, [3, 4, 2])
    for a, b in zip(views[0] + views[1], coefs + intercepts):
        np.testing.assert_array_equal(a, b)
    theta[:] = 0
    assert not views[0][0].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_rows", [1024, 10])
@pytest.mark.parametrize(
    "output, n_outputs", [("softmax", 3), ("logistic", 1), ("logistic", 3)],
    ids=["multiclass", "binary", "multilabel"],
)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_fused_objective_equals_the_reference(activation, output, n_outputs, block_rows,
                                              weighted, dtype):
    X, Y, layer_sizes, coefs, intercepts = problem(output, n_outputs, activation, dtype)
    w = np.random.RandomState(1).uniform(0, 2, len(X)).astype(dtype) if weighted else None
    loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, activation, output, 0.3, w)
    fused = FusedObjective(layer_sizes, activation, output, 0.3, dtype, block_rows=block_rows)
    theta = flatten(coefs, intercepts, dtype)
    for _ in range(2):  # the reused buffers give the same answer twice
        fused_loss, (gradient,) = fused([theta], X, Y, w)
        rtol = 1e-12 if dtype == np.float64 else 2e-5
        assert fused_loss == pytest.approx(loss, rel=rtol)
        assert gradient.dtype == dtype
        assert_allclose(gradient, flatten(dcoefs, dintercepts, dtype), rtol=rtol * 10,
                        atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("block_rows", [1024, 10])
@pytest.mark.parametrize("kind", ["csr", "csc"])
def test_fused_objective_on_sparse_x_equals_the_reference(kind, block_rows, dtype):
    """Sparse X takes the fused path too: its two products go through SciPy."""
    from scipy import sparse

    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "relu", dtype)
    X[np.abs(X) < 0.7] = 0  # about half zeros
    X_sparse = sparse.csr_matrix(X).asformat(kind)
    loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "relu", "softmax", 0.3)
    fused = FusedObjective(layer_sizes, "relu", "softmax", 0.3, dtype, block_rows=block_rows)
    fused_loss, (gradient,) = fused([flatten(coefs, intercepts, dtype)], X_sparse, Y, None)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert fused_loss == pytest.approx(loss, rel=rtol)
    assert gradient.dtype == dtype
    assert_allclose(gradient, flatten(dcoefs, dintercepts, dtype), rtol=rtol * 10,
                    atol=rtol * 1e-2)


def test_batches_of_several_sizes_share_one_objective():
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "tanh", np.float64,
                                                   n_samples=50)
    fused = FusedObjective(layer_sizes, "tanh", "softmax", 0.0, np.float64, block_rows=16)
    theta = flatten(coefs, intercepts, np.float64)
    for rows in (50, 7, 16, 50):
        loss, dcoefs, dintercepts = objective(X[:rows], Y[:rows], coefs, intercepts, "tanh",
                                              "softmax", 0.0)
        fused_loss, (gradient,) = fused([theta], X[:rows], Y[:rows], None)
        assert fused_loss == pytest.approx(loss, rel=1e-12)
        assert_allclose(gradient, flatten(dcoefs, dintercepts, np.float64), rtol=1e-11,
                        atol=1e-14)


def test_no_hidden_layer():
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "relu", np.float64, sizes=(6,))
    loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "relu", "softmax", 0.1)
    fused_loss, (gradient,) = FusedObjective(layer_sizes, "relu", "softmax", 0.1, np.float64)(
        [flatten(coefs, intercepts, np.float64)], X, Y, None)
    assert fused_loss == pytest.approx(loss, rel=1e-12)
    assert_allclose(gradient, flatten(dcoefs, dintercepts, np.float64), rtol=1e-11)


def test_extreme_logits_stay_finite():
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "logistic", np.float64)
    coefs[-1] *= 1e4  # saturated units, huge logits
    with np.errstate(over="ignore"):
        loss, (gradient,) = FusedObjective(layer_sizes, "logistic", "softmax", 0.0, np.float64)(
            [flatten(coefs, intercepts, np.float64)], X * 100, Y, None)
    reference = objective(X * 100, Y, coefs, intercepts, "logistic", "softmax", 0.0)[0]
    assert np.isfinite(loss) and np.isfinite(gradient).all()
    assert loss == pytest.approx(reference, rel=1e-10)


def test_small_steps_train_on_one_thread_and_large_ones_in_two_shards():
    from skbackprop._fast import ThreadPlan, thread_plan

    # digits, batches of 200: tiny products, one thread in all, BLAS included
    assert thread_plan([64, 100, 10], 200, available=2) == ThreadPlan(1, 1, 1)
    # a full batch of 15000 rows, or wide layers: two shards on two threads
    assert thread_plan([50, 100, 5], 15000, available=2) == ThreadPlan(2, 2, 1)
    assert thread_plan([100, 512, 512, 10], 256, available=2) == ThreadPlan(2, 2, 1)
    # products that dominate a step, too little elementwise work to pay for
    # the hand-offs: one thread, with BLAS's threads (digits of 28x28 pixels
    # in batches of 200 or 5000; a wide layer on 20 features)
    assert thread_plan([784, 100, 10], 200, available=2) == ThreadPlan(1, 1, None)
    assert thread_plan([784, 100, 10], 5000, available=2) == ThreadPlan(1, 1, None)
    assert thread_plan([20, 2048, 5], 200, available=2) == ThreadPlan(1, 1, None)
    # the shards do not depend on the threads that carry them out
    assert thread_plan([100, 512, 512, 10], 256, available=1) == ThreadPlan(2, 1, 1)
    assert thread_plan([100, 512, 512, 10], 256, available=8) == ThreadPlan(2, 2, 4)
    # sparse data cannot be cut into shards: BLAS threads as they are
    assert thread_plan([100, 512, 512, 10], 256, shardable=False) == ThreadPlan(1, 1, None)


@pytest.mark.parametrize("layer_sizes", [[64, 100, 10], [784, 100, 10], [20, 2048, 5],
                                         [50, 100, 5], [100, 512, 512, 10], [20, 64, 64, 3]])
@pytest.mark.parametrize("batch_size", [1, 200, 256, 1000, 15000])
def test_the_number_of_shards_depends_on_the_sizes_alone(layer_sizes, batch_size):
    """It sets the arithmetic: the threads available must not change it."""
    from skbackprop._fast import thread_plan

    plans = [thread_plan(layer_sizes, batch_size, available=n) for n in (1, 2, 3, 8)]
    assert len({plan.n_shards for plan in plans}) == 1
    assert all(plan.n_workers <= max(1, n) for plan, n in zip(plans, (1, 2, 3, 8)))


def test_the_plan_respects_a_callers_blas_limit():
    from threadpoolctl import threadpool_limits

    from skbackprop._fast import thread_plan

    with threadpool_limits(1, "blas"):  # as joblib sets it in its workers
        assert thread_plan([50, 100, 5], 15000).n_workers == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_samples", [1, 2, 37, 101])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_sharded_objective_equals_the_reference(n_threads, n_samples, weighted, dtype):
    from skbackprop._fast import Workers

    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "relu", dtype,
                                                   n_samples=n_samples)
    w = (np.random.RandomState(1).uniform(0, 2, n_samples).astype(dtype) if weighted
         else None)
    loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "relu", "softmax", 0.3, w)
    theta = flatten(coefs, intercepts, dtype)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    with Workers(n_threads) as workers:
        fused = FusedObjective(layer_sizes, "relu", "softmax", 0.3, dtype, block_rows=16,
                               n_shards=2, workers=workers)
        for _ in range(2):
            fused_loss, (gradient,) = fused([theta], X, Y, w)
            assert fused_loss == pytest.approx(loss, rel=rtol)
            assert_allclose(gradient, flatten(dcoefs, dintercepts, dtype), rtol=rtol * 10,
                            atol=rtol * 1e-2)


def test_the_arithmetic_does_not_depend_on_the_number_of_threads():
    from skbackprop._fast import Workers

    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "tanh", np.float64,
                                                   n_samples=301)
    theta = flatten(coefs, intercepts, np.float64)
    results = []
    for n_threads in (1, 2):
        with Workers(n_threads) as workers:
            fused = FusedObjective(layer_sizes, "tanh", "softmax", 0.1, np.float64,
                                   block_rows=64, n_shards=2, workers=workers)
            loss, (gradient,) = fused([theta], X, Y, None)
            results.append((loss, gradient.copy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_workers_return_results_in_order_and_wait_for_every_job():
    import time

    from skbackprop._fast import Workers

    with Workers(2) as workers:
        assert workers.map(lambda k: k * k, range(5)) == [0, 1, 4, 9, 16]
        finished = []

        def job(k):
            if k == 0:
                raise KeyboardInterrupt  # the calling thread's job fails at once ...
            time.sleep(0.2)
            finished.append(k)  # ... and the others still finish before map returns

        with pytest.raises(KeyboardInterrupt):
            workers.map(job, range(2))
        assert finished == [1]
        with pytest.raises(ValueError, match="in a worker"):  # a worker's error reaches the caller
            workers.map(_raise_in_worker, [0, 1])


def test_workers_spread_items_over_their_threads_and_end_with_the_block():
    import threading

    from skbackprop._fast import Workers

    with Workers(3) as workers:
        threads = list(workers.threads)
        for _ in range(50):  # the same helpers serve every map
            names = workers.map(lambda k: (k, threading.current_thread().name), range(7))
            assert [k for k, _ in names] == list(range(7))
            by_thread = {}
            for k, name in names:
                by_thread.setdefault(name, []).append(k)
            assert sorted(by_thread.values()) == [[0, 3, 6], [1, 4], [2, 5]]
            assert dict(names)[0] == threading.current_thread().name  # item 0: the caller
        with pytest.raises(ValueError, match="item 4"):  # two helpers fail: the first item's
            workers.map(_raise_from_items_4_and_5, range(7))
        assert workers.map(lambda k: -k, range(3)) == [0, -1, -2]  # usable after a failure
    assert len(threads) == 2 and not any(thread.is_alive() for thread in threads)


def test_a_ctrl_c_while_waiting_for_a_helper_comes_after_its_job():
    """The caller is waiting for the helper's answer when Ctrl-C comes: map
    raises KeyboardInterrupt only once the helper's job is done, so that
    the job does not outlive the call and its answer is not taken for the
    next map's."""
    import time

    from skbackprop._fast import Workers

    finished = []

    def job(k):
        if k == 1:  # the helper's
            time.sleep(0.5)
            finished.append(k)
        return f"first, {k}"

    with Workers(2) as workers:
        with ctrl_c_after(0.2):
            workers.map(job, [0, 1])
        assert finished == [1]
        assert workers.map(lambda k: f"second, {k}", [0, 1]) == ["second, 0", "second, 1"]


@contextmanager
def ctrl_c_after(seconds):
    """Within the block, which must then raise KeyboardInterrupt, a Ctrl-C
    (SIGINT to the main thread) comes ``seconds`` after it starts."""
    import signal
    import threading

    timer = threading.Timer(seconds, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        timer.cancel()  # a block that ended first must not be interrupted after it
        timer.join()


def test_a_map_holds_a_ctrl_c_back_only_under_pythons_own_handler():
    """During a map, Python's SIGINT handler is swapped for one that records
    the signal (raised when the map ends, see the test above); it is back
    after the map, also after a failure. Another handler is left alone."""
    import signal

    from skbackprop._fast import Workers

    seen = []

    def handler_inside(k):
        seen.append(signal.getsignal(signal.SIGINT))
        return k

    with Workers(2) as workers:
        workers.map(handler_inside, [0, 1])
        assert seen[0] is not signal.default_int_handler  # the caller's item, in the map
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(ValueError, match="in a worker"):
            workers.map(_raise_in_worker, [0, 1])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        def custom(number, frame):
            pass

        previous = signal.signal(signal.SIGINT, custom)
        try:
            seen.clear()
            workers.map(handler_inside, [0, 1])
            assert seen[0] is custom and signal.getsignal(signal.SIGINT) is custom
        finally:
            signal.signal(signal.SIGINT, previous)


def _raise_from_items_4_and_5(k):
    if k in (4, 5):
        raise ValueError(f"item {k}")
    return k


def _raise_in_worker(k):
    if k == 1:
        raise ValueError("raised in a worker")
    return k


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_logits_spread_too_far_for_one_shift(dtype):
    from skbackprop._fast import SHIFT_SPREAD

    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "identity", dtype)
    coefs[-1][:] = 0
    intercepts[-1][:] = [0, 0, 2 * SHIFT_SPREAD[np.dtype(dtype)]]  # every row: logits 0, 0, 2s
    loss, (gradient,) = FusedObjective(layer_sizes, "identity", "softmax", 0.0, dtype)(
        [flatten(coefs, intercepts, dtype)], X, Y, None)
    reference, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "identity", "softmax",
                                               0.0)
    assert np.isfinite(loss) and loss == pytest.approx(reference, rel=1e-6)
    assert_allclose(gradient, flatten(dcoefs, dintercepts, dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prediction_logits_equal_the_reference(activation, dtype):
    from scipy import sparse

    from skbackprop._fast import predict_logits as fast_logits
    from skbackprop._network import predict_logits

    X, _, _, coefs, intercepts = problem("softmax", 3, activation, dtype)
    expected = predict_logits(X, coefs, intercepts, activation)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert_allclose(fast_logits(X, coefs, intercepts, activation), expected, **tol)
    assert_allclose(fast_logits(sparse.csr_matrix(X), coefs, intercepts, activation), expected,
                    **tol)
    assert fast_logits(X, coefs, intercepts, activation).dtype == dtype


@pytest.mark.parametrize("activation", ["logistic", "relu"])
@pytest.mark.parametrize("kind", ["dense", "csr", "csc"])
@pytest.mark.parametrize("x_dtype", [np.float64, np.float32])
def test_prediction_in_blocks_equals_the_reference(activation, kind, x_dtype):
    from scipy import sparse

    from skbackprop._fast import predict_logits as fast_logits
    from skbackprop._network import predict_logits

    X, _, _, coefs, intercepts = problem("softmax", 3, activation, np.float64)  # 37 rows
    X = X.astype(x_dtype)
    expected = predict_logits(X, coefs, intercepts, activation)
    data = {"dense": X, "csr": sparse.csr_matrix(X), "csc": sparse.csc_matrix(X)}[kind]
    for block_rows in (1, 8, 36, 37, 100):  # one row a block, a short last block, one block
        logits = fast_logits(data, coefs, intercepts, activation, block_rows=block_rows)
        assert logits.shape == (37, 3) and logits.dtype == np.float64  # float64 weights
        assert_allclose(logits, expected, rtol=1e-12, atol=1e-14)


def test_the_estimator_predicts_many_rows_block_by_block_as_one():
    from skbackprop import BackpropMLPClassifier
    from skbackprop._fast import BLOCK_ROWS, prediction_block_rows
    from skbackprop._losses import OUTPUTS
    from skbackprop._network import predict_logits

    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(300, 5)), rng.randint(0, 3, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BackpropMLPClassifier((7,), max_iter=5, random_state=0).fit(X, y)
    rows = prediction_block_rows(clf.coefs_)
    assert rows > BLOCK_ROWS  # a narrow network: larger blocks
    X_many = rng.normal(size=(2 * rows + 5, 5))  # two full blocks and a short one
    expected = OUTPUTS["softmax"](predict_logits(X_many, clf.coefs_, clf.intercepts_, "relu"))
    assert_allclose(clf.predict_proba(X_many), expected, rtol=1e-12, atol=1e-15)


def test_prediction_blocks_hold_more_rows_when_the_layers_are_narrow():
    from skbackprop._fast import BLOCK_ROWS, PREDICT_BLOCK_VALUES, prediction_block_rows

    shapes = lambda *sizes: [np.empty((a, b)) for a, b in zip(sizes[:-1], sizes[1:])]  # noqa: E731
    assert prediction_block_rows(shapes(100, 512, 512, 10)) == BLOCK_ROWS  # the benchmark's
    assert prediction_block_rows(shapes(100, 100, 10)) == PREDICT_BLOCK_VALUES // 100
    assert prediction_block_rows(shapes(20, 10, 5)) == PREDICT_BLOCK_VALUES // 10
    assert prediction_block_rows(shapes(20, 5000, 3)) == BLOCK_ROWS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_rows", [1, 15, 16, 500])  # the reference's, then the fused
def test_the_prediction_softmax_equals_the_reference(dtype, n_rows):
    from skbackprop._fast import softmax as fast_softmax
    from skbackprop._losses import softmax

    rng = np.random.RandomState(0)
    for scale in (1.0, 30.0, 1e4):  # the last spreads too far for one shift
        Z = (rng.normal(size=(n_rows, 7)) * scale).astype(dtype)
        expected = softmax(Z)
        P = fast_softmax(Z)
        assert (P is Z) == (n_rows >= 16) and P.dtype == dtype
        assert_allclose(P, expected, rtol=1e-12 if dtype == np.float64 else 1e-5,
                        atol=1e-300 if dtype == np.float64 else 1e-38)
        assert_allclose(P.sum(axis=1), 1, rtol=1e-12 if dtype == np.float64 else 1e-6)


def lockstep_batches(dtype, weighted):
    """Batches of a problem, among them one of a single row (one shard only)
    and, when weighted, one whose weights are partly zero."""
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "relu", dtype, n_samples=61)
    w = (np.random.RandomState(2).uniform(0, 2, len(X)).astype(dtype) if weighted else None)
    if weighted:
        w[:5] = 0
    cuts = [0, 16, 32, 33, 50, 61]
    batches = [(X[a:b], Y[a:b], None if w is None else w[a:b]) for a, b in zip(cuts, cuts[1:])]
    return batches, layer_sizes, flatten(coefs, intercepts, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("make_optimizer", [
    lambda: sgd(0.9, nesterov=False), lambda: sgd(0.9, nesterov=True), lambda: adam(),
], ids=["momentum", "nesterov", "adam"])
def test_steps_in_lockstep_are_the_steps_in_turn(make_optimizer, n_threads, weighted, dtype):
    """The shards' threads stepping through an epoch together give the
    numbers of calling the objective and then the optimizer for each batch,
    bit for bit: the losses, the parameters and the optimizer's state."""
    from skbackprop._fast import Workers
    from skbackprop._training import steps_in_turn

    batches, layer_sizes, start = lockstep_batches(dtype, weighted)
    results = []
    with Workers(n_threads) as workers:
        for steps in (steps_in_turn, FusedObjective.steps_in_lockstep):
            fused = FusedObjective(layer_sizes, "relu", "softmax", 0.3, dtype, block_rows=8,
                                   n_shards=2, workers=workers)
            params, optimizer = [start.copy()], make_optimizer()
            state = optimizer.init(params)
            for learning_rate in (0.1, 0.05):  # two epochs: the state carries over
                losses, state = steps(fused, params, batches, optimizer, state, learning_rate)
            results.append((losses, params[0], state))
    (turn_losses, turn_theta, turn_state), (losses, theta, state) = results
    assert losses == turn_losses and len(losses) == len(batches)
    np.testing.assert_array_equal(theta, turn_theta)
    assert not np.array_equal(theta, start)  # it moved
    assert type(state) is type(turn_state)
    for field, turn_field in zip(state, turn_state):  # whole arrays, counters advanced
        if isinstance(field, tuple):
            for a, b in zip(field, turn_field):
                assert a.shape == b.shape == theta.shape
                np.testing.assert_array_equal(a, b)
        else:
            assert field == turn_field


def test_a_fit_in_two_shards_steps_in_lockstep(monkeypatch, wide_data):
    from skbackprop import _fast

    calls = []
    real = _fast.FusedObjective.steps_in_lockstep

    def steps_in_lockstep(self, params, batches, *args):
        calls.append(len(batches))
        return real(self, params, batches, *args)

    monkeypatch.setattr(_fast.FusedObjective, "steps_in_lockstep", steps_in_lockstep)
    fit_with_threads(monkeypatch, 2, {**WIDE, "solver": "adam"}, *wide_data)
    assert calls == [3] * WIDE["max_iter"]  # 2500 rows in batches of 1000, every epoch


def _phases(log, k, n_meetings, interrupt_at=None):
    """A lockstep job: it logs each stretch between two meetings, with the
    thread that ran it, the helper's slowly, so that a job that did not wait
    would log too soon. The caller's job sends the main thread a Ctrl-C
    after stretch ``interrupt_at``."""
    import signal
    import threading
    import time

    for phase in range(n_meetings):
        if k == 1:
            time.sleep(0.01)
        log.append((phase, k, threading.current_thread().name))
        if k == 0 and phase == interrupt_at:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        yield
    return f"job {k} done"


def _within(seconds, function):
    """What ``function()`` raises (None if nothing), run on another thread
    that must end within ``seconds``: a test of code that hangs fails
    instead of hanging the suite. (Open the ``Workers`` inside ``function``:
    closing them waits for their threads.)"""
    import threading

    raised = []

    def call():
        try:
            function()
        except BaseException as error:  # noqa: BLE001 -- the test looks at it
            raised.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return raised[0] if raised else None


def _fresh_lockstep(n_threads, jobs):
    """``_within`` 10 s, ``Workers(n_threads).lockstep(list(jobs()))``; what
    it raised, after checking that the workers still serve a lockstep."""
    from skbackprop._fast import Workers

    raised = []

    def run():
        with Workers(n_threads) as workers:
            try:
                workers.lockstep(list(jobs()))
            except BaseException as error:  # noqa: BLE001 -- the test looks at it
                raised.append(error)
            assert workers.lockstep([_phases([], k, 2) for k in range(2)]) == [
                "job 0 done", "job 1 done"]  # usable after a failure

    assert _within(10, run) is None
    return raised[0] if raised else None


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_lockstep_jobs_meet_at_every_yield(n_threads):
    import threading

    from skbackprop._fast import Workers

    log = []
    with Workers(n_threads) as workers:
        results = workers.lockstep([_phases(log, k, 5) for k in range(2)])
        first_helper = workers.threads[0].name if workers.threads else None
    assert results == ["job 0 done", "job 1 done"]
    assert sorted((phase, k) for phase, k, _ in log) == [
        (phase, k) for phase in range(5) for k in range(2)]
    assert [phase for phase, _, _ in log] == sorted(phase for phase, _, _ in log)
    by_job = [{name for _, j, name in log if j == k} for k in range(2)]
    assert by_job[0] == {threading.current_thread().name}  # the caller's job
    assert by_job[1] == (by_job[0] if n_threads == 1 else {first_helper})


def test_lockstep_runs_in_turn_in_a_forked_child(monkeypatch):
    import threading

    from skbackprop._fast import Workers

    log = []
    with Workers(2) as workers:
        monkeypatch.setattr(workers, "pid", -1)  # as if this process were a forked child
        assert workers.lockstep([_phases(log, k, 3) for k in range(2)]) == [
            "job 0 done", "job 1 done"]
    assert {name for _, _, name in log} == {threading.current_thread().name}
    assert [(phase, k) for phase, k, _ in log] == [
        (phase, k) for phase in range(3) for k in range(2)]


def _fails_at(log, k, failing):
    """A lockstep job of three meetings; job ``failing`` fails after the
    first."""
    for phase in range(3):
        if phase == 1 and k == failing:
            raise ValueError(f"job {k} failed")
        log.append((phase, k))
        yield


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_lockstep_job_stops_the_others(failing):
    log = []
    error = _fresh_lockstep(2, lambda: [_fails_at(log, k, failing) for k in range(2)])
    assert isinstance(error, ValueError) and f"job {failing} failed" in str(error)
    other = 1 - failing  # stopped at its next meeting, never past it
    assert [phase for phase, k in log if k == other] in ([0], [0, 1])


@pytest.mark.parametrize("on_helper", [False, True])
def test_a_lockstep_job_that_fails_before_it_starts_frees_the_other(monkeypatch, on_helper):
    """A failure outside the jobs themselves, as the caller's or the
    helper's job is about to start (where a KeyboardInterrupt from a custom
    SIGINT handler, or a MemoryError, can come), must not leave the other
    job waiting at a meeting for ever."""
    import threading

    from skbackprop import _fast

    real, caller, failed = _fast._run_in_lockstep, [], []

    def failing_first(job, meetings, held_ctrl_c):  # fails once, on one side
        if (threading.current_thread() is not caller[0]) == on_helper and not failed:
            failed.append(True)
            raise MemoryError("before the job")
        return real(job, meetings, held_ctrl_c)

    def jobs():
        caller.append(threading.current_thread())  # the thread _fresh_lockstep runs on
        yield from (_phases([], k, 3) for k in range(2))

    monkeypatch.setattr(_fast, "_run_in_lockstep", failing_first)
    error = _fresh_lockstep(2, jobs)
    assert isinstance(error, MemoryError) and failed


def _raises_broken_barrier(k):
    import threading

    yield
    if k == 1:
        raise threading.BrokenBarrierError("a barrier of the job's own")
    yield


def test_a_lockstep_job_raising_a_broken_barrier_of_its_own_is_a_failure():
    error = _fresh_lockstep(2, lambda: [_raises_broken_barrier(k) for k in range(2)])
    assert "of the job's own" in str(error)


@pytest.mark.parametrize("counts", [(2, 3), (3, 2), (0, 1)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_lockstep_jobs_must_yield_equally_often(n_threads, counts):
    error = _fresh_lockstep(n_threads, lambda: [_phases([], k, counts[k]) for k in range(2)])
    assert isinstance(error, RuntimeError) and "unequally" in str(error)


def test_a_ctrl_c_stops_lockstep_jobs_at_the_same_meeting():
    """A Ctrl-C held back while the jobs run stops them at the caller's next
    meeting point, not at the end of the jobs (an epoch, in training), and
    both at the same one; then it goes up."""
    from skbackprop._fast import Workers

    log = []
    with Workers(2) as workers:
        with pytest.raises(KeyboardInterrupt):
            workers.lockstep([_phases(log, k, 1000, interrupt_at=3) for k in range(2)])
        assert workers.lockstep([_phases([], k, 2) for k in range(2)]) == [
            "job 0 done", "job 1 done"]  # usable after it
    assert [[phase for phase, j, _ in log if j == k] for k in range(2)] == [[0, 1, 2, 3]] * 2


# ---------------------------------------------------- training on two threads

WIDE = dict(hidden_layer_sizes=(256, 256), batch_size=1000, max_iter=4, tol=0.0,
            n_iter_no_change=10, random_state=0)


@pytest.fixture
def wide_data():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=2500, n_features=40, n_informative=20, n_classes=4,
                               random_state=0)
    return X, y


def fit_with_threads(monkeypatch, n_threads, params, X, y):
    from skbackprop import BackpropMLPClassifier
    from skbackprop import _fast

    monkeypatch.setattr(_fast, "_blas_thread_limit", lambda: n_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BackpropMLPClassifier(**params).fit(X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_two_threads_train_exactly_as_one(monkeypatch, wide_data, solver):
    """Large steps run as two shards; whether one thread or two compute them,
    the numbers are the same, bit for bit."""
    from skbackprop._fast import thread_plan

    X, y = wide_data
    assert thread_plan([40, 256, 256, 4], 1000, available=2).n_shards == 2
    one = fit_with_threads(monkeypatch, 1, {**WIDE, "solver": solver}, X, y)
    two = fit_with_threads(monkeypatch, 2, {**WIDE, "solver": solver}, X, y)
    assert one.loss_curve_ == two.loss_curve_
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_shards_train_as_one_batch_would(monkeypatch, wide_data, solver):
    """Cutting steps into shards changes only the order of the sums."""
    from skbackprop import _fast

    X, y = wide_data
    two = fit_with_threads(monkeypatch, 2, {**WIDE, "solver": solver}, X, y)
    monkeypatch.setattr(_fast, "SHARD_VALUES", np.inf)
    assert _fast.thread_plan([40, 256, 256, 4], 1000).n_shards == 1
    one = fit_with_threads(monkeypatch, 2, {**WIDE, "solver": solver}, X, y)
    assert_allclose(two.loss_curve_, one.loss_curve_, rtol=1e-10)
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        assert_allclose(b, a, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("how", ["raised", "signal"])
def test_an_interrupt_while_two_threads_train_keeps_the_best_epoch(monkeypatch, wide_data,
                                                                   how):
    """A KeyboardInterrupt raised in the caller's shard, or a real Ctrl-C
    (SIGINT) sent from the helper's, in the middle of a lockstep epoch: the
    fit ends within that epoch, interrupted, with the weights of the best
    finished epoch."""
    import signal
    import threading

    from skbackprop import BackpropMLPClassifier
    from skbackprop import _fast

    X, y = wide_data
    params = {**WIDE, "max_iter": 50}
    real_block, calls = _fast.FusedObjective._block, {"n": 0}

    def block(self, shard, *args):
        if shard is self.shards[0 if how == "raised" else 1]:
            calls["n"] += 1
            if calls["n"] == 3 * 5 + 2:  # 3 steps per epoch: in epoch 6
                if how == "raised":
                    raise KeyboardInterrupt
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return real_block(self, shard, *args)

    monkeypatch.setattr(_fast, "_blas_thread_limit", lambda: 2)
    monkeypatch.setattr(_fast.FusedObjective, "_block", block)
    with pytest.warns(UserWarning, match="interrupted"):
        clf = BackpropMLPClassifier(**params).fit(X, y)
    monkeypatch.setattr(_fast.FusedObjective, "_block", real_block)
    assert clf.n_iter_ == 5 and calls["n"] == 3 * 5 + 2  # no shard after step 2 of epoch 6
    best_epoch = int(np.argmin(clf.loss_curve_)) + 1
    reference = fit_with_threads(monkeypatch, 2, {**params, "max_iter": best_epoch}, X, y)
    for a, b in zip(clf.coefs_ + clf.intercepts_, reference.coefs_ + reference.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_workers_follow_the_callers_floating_point_error_settings():
    """Training ignores exp overflow (a saturated sigmoid is exactly 0); the
    workers must too, though NumPy keeps those settings per thread."""
    from skbackprop._fast import Workers

    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "logistic", np.float64,
                                                   n_samples=64)
    coefs[0] *= 1e4  # pre-activations far below -709: exp(-z) overflows ...
    X[:32] = 0  # ... in the second shard's rows only, which a worker computes
    theta = flatten(coefs, intercepts, np.float64)
    with Workers(2) as workers, warnings.catch_warnings():
        warnings.simplefilter("error")
        fused = FusedObjective(layer_sizes, "logistic", "softmax", 0.0, np.float64,
                               n_shards=2, workers=workers)
        with np.errstate(over="ignore"):
            loss, (gradient,) = fused([theta], X, Y, None)
        with pytest.raises(FloatingPointError), np.errstate(over="raise"):
            fused([theta], X, Y, None)
    assert np.isfinite(loss) and np.isfinite(gradient).all()


# ------------------------------------------- BLAS limits of fits run at once


def _open_and_close_in_threads(requests, order):
    """Open and close a ``training_threads`` block on a thread of its own for
    each of ``requests`` (its plan's ``blas_threads``), in ``order`` (each
    index twice: open, then close), one step at a time: the blocks overlap
    exactly as ``order`` says, whatever the timing. Odd-numbered blocks close
    on an exception. Returns, after each step, the requests of the blocks
    open and the BLAS limits."""
    import queue
    import threading

    from skbackprop._fast import ThreadPlan, training_threads

    go_in = [threading.Event() for _ in requests]
    go_out = [threading.Event() for _ in requests]
    done = queue.Queue()

    def run(k):
        go_in[k].wait(timeout=60)
        try:
            with training_threads(ThreadPlan(1, 1, requests[k])):
                done.put(k)
                go_out[k].wait(timeout=60)
                if k % 2:
                    raise KeyError(k)
        except KeyError:
            pass
        done.put(k)

    threads = [threading.Thread(target=run, args=(k,), daemon=True)
               for k in range(len(requests))]
    for thread in threads:
        thread.start()
    open_blocks, steps = set(), []
    try:
        for k in order:
            if k in open_blocks:
                open_blocks.remove(k)
                go_out[k].set()
            else:
                open_blocks.add(k)
                go_in[k].set()
            assert done.get(timeout=60) == k  # the step is over
            steps.append(([requests[j] for j in open_blocks], blas_limits_now()))
    finally:
        for event in go_in + go_out:  # every thread finishes, even after a failure
            event.set()
        for thread in threads:
            thread.join(timeout=60)
    return steps


def _expected_limits(open_requests, before):
    """The smallest request of the open blocks; with none, the limits from before."""
    wanted = [n for n in open_requests if n is not None]
    return [(path, min(wanted)) for path, _ in before] if wanted else before


def test_blocks_that_overlap_without_nesting_put_the_blas_limits_back(blas_limits):
    """The defect at its simplest: A (1 BLAS thread) opens, B (2) opens, A
    closes, B closes. B used to put back the limit that A had set."""
    steps = _open_and_close_in_threads([1, 2], [0, 1, 0, 1])
    assert blas_limits_now() == blas_limits
    for open_requests, observed in steps:
        assert observed == _expected_limits(open_requests, blas_limits)


@pytest.mark.parametrize("seed", range(3))
def test_blocks_opened_and_closed_in_threads_in_any_order_put_the_blas_limits_back(
        blas_limits, seed):
    """Rounds of eight threads, whose plans ask for 1 or 2 BLAS threads or
    leave BLAS as it is, open and close their blocks in an order drawn at
    random. Once all are closed, the limits are those from before; meanwhile
    BLAS follows the smallest request of the blocks open."""
    rng = np.random.RandomState(seed)
    requests = [1, 2, None, 1, 2, None, 2, 1]
    for _ in range(5):
        order = rng.permutation(np.repeat(np.arange(len(requests)), 2))
        steps = _open_and_close_in_threads(requests, order)
        assert blas_limits_now() == blas_limits  # the defect: a lower limit stayed behind
        for open_requests, observed in steps:
            assert observed == _expected_limits(open_requests, blas_limits)


def test_nested_blocks_and_an_exception_put_the_blas_limits_back(blas_limits):
    from skbackprop._fast import ThreadPlan, training_threads

    def limit():
        return {threads for _, threads in blas_limits_now()}

    with pytest.raises(KeyError):
        with training_threads(ThreadPlan(1, 1, 2)):
            assert limit() == {2}
            with training_threads(ThreadPlan(1, 1, 1)):
                assert limit() == {1}
            assert limit() == {2}
            with training_threads(ThreadPlan(1, 1, None)):  # leaves BLAS as it is
                assert limit() == {2}
            raise KeyError
    assert blas_limits_now() == blas_limits


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_running_at_once_in_threads_put_the_blas_limits_back(blas_limits, monkeypatch):
    """As ``GridSearchCV(n_jobs=2)`` on joblib's threading backend runs them:
    that used to leave BLAS on one thread for the rest of the process."""
    import threading
    from contextlib import contextmanager

    from sklearn.datasets import make_classification

    from skbackprop import BackpropMLPClassifier, _estimator, _fast

    n_threads, fits_per_thread = 4, 3
    together = threading.Barrier(n_threads, timeout=60)
    during = []

    @contextmanager
    def training_threads(plan):  # the fits of each round all train at once
        with _fast.training_threads(plan) as workers:
            together.wait()
            during.append(blas_limits_now())
            yield workers

    monkeypatch.setattr(_estimator, "training_threads", training_threads)
    X, y = make_classification(n_samples=200, n_features=10, random_state=0)
    fitted, errors = [], []

    def fit(seed):
        try:
            for _ in range(fits_per_thread):
                clf = BackpropMLPClassifier((8,), max_iter=5, random_state=seed).fit(X, y)
                fitted.append(clf.n_iter_)
        except BaseException as error:  # reported below; the others need not wait
            errors.append(error)
            together.abort()

    threads = [threading.Thread(target=fit, args=(seed,)) for seed in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and fitted == [5] * (n_threads * fits_per_thread)
    assert blas_limits_now() == blas_limits
    # small steps: every fit asked for one BLAS thread, and had it
    assert all(limits == [(path, 1) for path, _ in blas_limits] for limits in during)
