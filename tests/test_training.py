import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import shuffle as sklearn_shuffle

from skbackprop._optimizers import sgd
from skbackprop._training import (
    MinibatchConfig,
    SolverState,
    epoch_order,
    exploded,
    invscaling,
    minibatch_source,
    minibatches,
    no_improvement_count,
    pack,
    run_epoch,
    train_lbfgs,
    train_minibatch,
    unpack,
)


def test_minibatches_cover_every_sample_once_in_order():
    order = np.random.RandomState(0).permutation(23)
    batches = minibatches(order, 5)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert_array_equal(np.concatenate(batches), order)


def test_epoch_order_without_shuffling_is_unchanged():
    previous = np.arange(10)
    assert epoch_order(10, False, np.random.RandomState(0), previous) is previous


def test_epoch_order_matches_scikit_learns_shuffle_sequence():
    ours, theirs = np.arange(12), np.arange(12)
    rng_ours, rng_theirs = np.random.RandomState(5), np.random.RandomState(5)
    for _ in range(3):
        ours = epoch_order(12, True, rng_ours, ours)
        theirs = sklearn_shuffle(theirs, random_state=rng_theirs)
        assert_array_equal(ours, theirs)


def test_no_improvement_rule():
    assert no_improvement_count(1.0, 2.0, 3, tol=0.5) == 0  # improved by 1 > tol
    assert no_improvement_count(1.6, 2.0, 3, tol=0.5) == 4  # improved by only 0.4
    assert no_improvement_count(2.5, 2.0, 0, tol=0.0) == 1  # got worse
    assert no_improvement_count(1.0, np.inf, 5, tol=0.5) == 0  # the first epoch
    # a score: higher is better
    assert no_improvement_count(0.9, 0.5, 3, tol=0.1, higher_is_better=True) == 0
    assert no_improvement_count(0.55, 0.5, 3, tol=0.1, higher_is_better=True) == 4
    assert no_improvement_count(0.5, -np.inf, 5, tol=0.1, higher_is_better=True) == 0


@pytest.mark.parametrize("n_val", [30, 60])
def test_no_improvement_rule_rounds_as_mlpclassifiers(n_val):
    """MLPClassifier compares ``score < best + tol`` (and ``loss > best - tol``).
    With validation accuracies k / n_val and tol = 1 / n_val, one more sample
    right is an improvement there for most k, though ``score - best < tol``
    in floating point: the rule must round the same way."""
    tol = 1 / n_val
    for k in range(n_val):
        best, score = k / n_val, (k + 1) / n_val
        expected = 4 if score < best + tol else 0  # MLPClassifier's test, verbatim
        assert no_improvement_count(score, best, 3, tol, higher_is_better=True) == expected
        loss, best_loss = 1 - score, 1 - best  # the same, for a loss that falls
        expected = 4 if loss > best_loss - tol else 0
        assert no_improvement_count(loss, best_loss, 3, tol) == expected


def test_invscaling_schedule():
    assert invscaling(0.1, 0.5, 0) == 0.1
    assert invscaling(0.1, 0.5, 99) == pytest.approx(0.01)
    assert invscaling(0.1, 0.0, 1000) == 0.1


def test_divergence_guard_rule():
    params = [np.ones(3)]
    assert exploded(np.nan, 1.0, params) and exploded(np.inf, 1.0, params)
    assert exploded(1.0, 1.0, [np.array([1.0, np.inf])])
    assert not exploded(99.0, 0.5, params)  # the best loss is floored at 1
    assert exploded(101.0, 0.5, params)
    assert not exploded(400.0, 5.0, params) and exploded(600.0, 5.0, params)
    assert not exploded(1e6, np.inf, params)  # no best loss yet: only finiteness


def test_pack_and_unpack_round_trip():
    arrays = [np.arange(6.0).reshape(2, 3), np.arange(3.0)]
    vector = pack(arrays)
    assert_array_equal(vector, [0, 1, 2, 3, 4, 5, 0, 1, 2])
    for a, b in zip(unpack(vector, arrays), arrays):
        assert_array_equal(a, b)


def quadratic_problem():
    """Weighted least squares in one parameter: sum_n s_n (w - y_n)**2 / (2 S)
    is minimised at the weighted mean of y."""
    Y = np.arange(10.0)[:, None]
    X = np.zeros((10, 1))

    def objective(params, X_batch, Y_batch, w):
        w = np.ones(len(Y_batch)) if w is None else w
        residual = params[0] - Y_batch[:, 0]
        S = w.sum()
        return float(w @ residual**2 / (2 * S)), [np.array([w @ residual / S])]

    return objective, X, Y


def config(**changes):
    settings = dict(batch_size=10, max_iter=500, shuffle=False, tol=1e-10, n_iter_no_change=3,
                    schedule="constant", power_t=0.5)
    settings.update(changes)
    return MinibatchConfig(**settings)


def fresh_state(optimizer, params, learning_rate, best=np.inf):
    return SolverState(optimizer.init(params), learning_rate, 0, best, 0, learning_rate)


def test_full_batch_training_reaches_the_minimum_and_stops():
    objective, X, Y = quadratic_problem()
    params = [np.array([20.0])]
    optimizer = sgd()
    result = train_minibatch(objective, params, X, Y, None, optimizer, config(),
                             fresh_state(optimizer, params, 0.5), np.random.RandomState(0))
    assert params[0][0] == pytest.approx(4.5, abs=1e-4)
    assert result.converged and not result.diverged and not result.stopped
    assert len(result.loss_curve) < 500
    assert result.state.best == min(result.loss_curve)
    assert result.state.samples_seen == 10 * len(result.loss_curve)
    # curve[k] is the loss at the weights that epoch k started from
    assert result.loss_curve[0] == pytest.approx(np.mean((20.0 - Y) ** 2) / 2)


def test_sample_weights_shift_the_minimum():
    objective, X, Y = quadratic_problem()
    w = np.arange(10.0)
    params = [np.array([0.0])]
    optimizer = sgd()
    train_minibatch(objective, params, X, Y, w, optimizer, config(),
                    fresh_state(optimizer, params, 0.5), np.random.RandomState(0))
    assert params[0][0] == pytest.approx(w @ Y[:, 0] / w.sum(), abs=1e-4)


def test_epoch_loss_is_the_weighted_mean_of_batch_losses_and_empty_batches_are_skipped():
    objective, X, Y = quadratic_problem()
    w = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    params = [np.array([0.0])]
    optimizer = sgd()
    next_epoch = minibatch_source(X, Y, w, None, 4, False, np.random.RandomState(0))
    calls = []

    def counting(params, X, Y, w):
        calls.append(len(Y))
        return objective(params, X, Y, w)

    batch_losses = []
    loss, _ = run_epoch(counting, params, next_epoch(), optimizer, optimizer.init(params), 0.0,
                        batch_losses=batch_losses)
    assert calls == [4, 2]  # the first batch weighs nothing and was skipped
    assert loss == pytest.approx(w @ Y[:, 0] ** 2 / (2 * w.sum()))
    assert batch_losses == [pytest.approx(w[4:8] @ Y[4:8, 0] ** 2 / (2 * w[4:8].sum())),
                            pytest.approx(w[8:] @ Y[8:, 0] ** 2 / (2 * w[8:].sum()))]


def test_an_epoch_given_its_steps_skips_empty_batches_and_weighs_the_losses():
    """run_epoch's ``steps`` (the estimator's threads in lockstep) takes the
    batches that hold information, and the epoch's loss weighs their losses
    as when the objective and the optimizer are called in turn."""
    objective, X, Y = quadratic_problem()
    w = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    params, optimizer = [np.array([0.0])], sgd()
    next_epoch = minibatch_source(X, Y, w, None, 4, False, np.random.RandomState(0))
    taken = []

    def steps(objective, params, batches, optimizer, state, learning_rate):
        taken.extend(len(Y) for _, Y, _ in batches)
        return [10.0, 20.0], "new state"

    batch_losses = []
    loss, state = run_epoch(objective, params, next_epoch(), optimizer, "old state", 0.1,
                            batch_losses=batch_losses, steps=steps)
    assert taken == [4, 2]  # the first batch weighs nothing
    assert state == "new state" and batch_losses == [10.0, 20.0]
    assert loss == pytest.approx((10.0 * w[4:8].sum() + 20.0 * w[8:].sum()) / w.sum())


def test_minibatch_source_slices_unshuffled_data_in_place():
    X = np.arange(20.0).reshape(10, 2)
    Y = np.arange(10.0)[:, None]
    batches = minibatch_source(X, Y, None, None, 4, False, np.random.RandomState(0))()
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert all(np.shares_memory(b[0], X) for b in batches)


def test_minibatch_source_shuffles_into_one_reused_buffer():
    X = np.arange(20.0).reshape(10, 2)
    Y = np.arange(10.0)[:, None]
    next_epoch = minibatch_source(X, Y, None, None, 4, True, np.random.RandomState(0))
    first = next_epoch()
    buffer = first[0][0].base
    rows = np.concatenate([b[1][:, 0] for b in first]).astype(int)
    assert sorted(rows) == list(range(10)) and list(rows) != list(range(10))
    assert_array_equal(np.concatenate([b[0] for b in first]), X[rows])
    second = next_epoch()
    assert second[0][0].base is buffer  # the same buffer, refilled
    assert not np.shares_memory(buffer, X)


def test_minibatch_source_full_batch_is_never_shuffled_and_rows_are_copied_once():
    X = np.arange(20.0).reshape(10, 2)
    Y = np.arange(10.0)[:, None]
    rows = np.array([7, 2, 5])
    next_epoch = minibatch_source(X, Y, None, rows, 10, True, np.random.RandomState(0))
    (Xb, Yb, wb), = next_epoch()
    assert_array_equal(Yb[:, 0], rows)
    (Xb2, _, _), = next_epoch()
    assert Xb2.base is Xb.base


def test_minibatch_source_indexes_sparse_rows_batch_by_batch():
    from scipy import sparse

    X = sparse.csr_matrix(np.arange(20.0).reshape(10, 2))
    Y = np.arange(10.0)[:, None]
    batches = minibatch_source(X, Y, None, None, 3, True, np.random.RandomState(1))()
    for Xb, Yb, _ in batches:
        assert sparse.issparse(Xb)
        assert_array_equal(Xb.toarray(), X.toarray()[Yb[:, 0].astype(int)])


def test_adaptive_schedule_divides_the_learning_rate_by_five_when_stalled():
    objective, X, Y = quadratic_problem()
    params = [np.array([4.5])]  # already at the minimum: every epoch stalls
    optimizer = sgd()
    cfg = config(schedule="adaptive", n_iter_no_change=2, max_iter=100, tol=1e-3)
    result = train_minibatch(objective, params, X, Y, None, optimizer, cfg,
                             fresh_state(optimizer, params, 0.1), np.random.RandomState(0))
    # 0.1 / 5**k must fall to 1e-6 or below before a stall stops training: k = 8
    assert result.state.learning_rate == pytest.approx(0.1 / 5**8)
    assert result.converged
    # one improving epoch, then 9 stalls of n_iter_no_change + 1 epochs each
    assert len(result.loss_curve) == 1 + 9 * 3


def test_invscaling_updates_the_learning_rate_after_each_epoch():
    objective, X, Y = quadratic_problem()
    params = [np.array([0.0])]
    optimizer = sgd()
    cfg = config(schedule="invscaling", max_iter=3, power_t=0.25,
                 tol=0.0, n_iter_no_change=100)
    result = train_minibatch(objective, params, X, Y, None, optimizer, cfg,
                             fresh_state(optimizer, params, 0.2), np.random.RandomState(0))
    assert result.state.learning_rate == pytest.approx(0.2 / 31**0.25)


def test_explosion_restores_the_best_parameters():
    objective, X, Y = quadratic_problem()
    params = [np.array([1.0])]
    optimizer = sgd()
    cfg = config(tol=0.0, n_iter_no_change=10**6, max_iter=1000)
    with np.errstate(over="ignore", invalid="ignore"):
        result = train_minibatch(objective, params, X, Y, None, optimizer, cfg,
                                 fresh_state(optimizer, params, 10.0), np.random.RandomState(0))
    assert result.diverged and not result.converged
    assert len(result.loss_curve) < 10
    # the weights now are those after the best epoch, not the exploded ones
    assert np.isfinite(params[0]).all()
    assert abs(params[0][0]) < 1e3


def test_validation_watches_the_score_and_restores_the_best_parameters():
    objective, X, Y = quadratic_problem()
    params = [np.array([0.0])]
    optimizer = sgd()
    seen = []

    def validate(p):  # best when w is near 2; training pulls it on to 4.5
        seen.append(float(p[0][0]))
        return -abs(p[0][0] - 2.0), 0.0

    cfg = config(n_iter_no_change=2, tol=0.0)
    result = train_minibatch(objective, params, X, Y, None, optimizer, cfg,
                             fresh_state(optimizer, params, 0.3, best=-np.inf),
                             np.random.RandomState(0), validate=validate)
    best = seen[int(np.argmax([-abs(v - 2.0) for v in seen]))]
    assert params[0][0] == best
    assert result.converged
    assert len(result.validation_scores) == len(result.loss_curve)


def test_hooks_see_every_epoch_and_can_stop_training():
    objective, X, Y = quadratic_problem()
    events = []

    class Hooks:
        def begin(self, epoch):
            events.append(("begin", epoch))

        def end(self, epoch, params):
            events.append(("end", epoch))
            return epoch == 2

    params = [np.array([20.0])]
    optimizer = sgd()
    result = train_minibatch(objective, params, X, Y, None, optimizer, config(),
                             fresh_state(optimizer, params, 0.01), np.random.RandomState(0),
                             hooks=Hooks())
    assert events == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2), ("end", 2)]
    assert result.stopped and len(result.loss_curve) == 3


def test_verbose_prints_each_epoch(capsys):
    objective, X, Y = quadratic_problem()
    params = [np.array([1.0])]
    optimizer = sgd()
    train_minibatch(objective, params, X, Y, None, optimizer, config(max_iter=2),
                    fresh_state(optimizer, params, 0.1), np.random.RandomState(0), verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ")
    assert lines[1].startswith("Iteration 2, loss = ")
    assert_allclose(float(lines[0].split("=")[1]), np.mean((1.0 - Y) ** 2) / 2, rtol=1e-7)


def test_lbfgs_finds_the_minimum_and_records_each_iteration():
    objective, X, Y = quadratic_problem()
    params = [np.array([20.0])]
    result = train_lbfgs(objective, params, X, Y, None, max_iter=100, max_fun=1000, tol=1e-10)
    assert params[0][0] == pytest.approx(4.5, abs=1e-6)
    assert result.converged and not result.diverged
    assert 1 <= len(result.loss_curve) < 100
    assert result.loss_curve[-1] == pytest.approx(np.mean((4.5 - Y) ** 2) / 2)


def test_lbfgs_hooks_can_stop():
    objective, X, Y = quadratic_problem()

    class StopAtOnce:
        def begin(self, i):
            pass

        def end(self, i, params):
            return True

    X2 = np.zeros((10, 2))
    Y2 = np.column_stack([np.arange(10.0), np.arange(10.0) ** 2])

    def objective2(params, X, Y, w):  # two independent quadratics, several iterations
        r = params[0] - Y.mean(axis=0)
        return float(r @ (np.array([1.0, 100.0]) * r)), [2 * np.array([1.0, 100.0]) * r]

    params = [np.array([50.0, -50.0])]
    result = train_lbfgs(objective2, params, X2, Y2, None, max_iter=100, max_fun=1000, tol=1e-12,
                         hooks=StopAtOnce())
    assert result.stopped and len(result.loss_curve) == 1
