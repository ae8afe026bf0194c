"""Training options: lbfgs, schedules, early stopping, partial_fit, sample and
class weights, verbose output and the divergence guard."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
import sklearn
from sklearn import config_context
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import compute_sample_weight
from sklearn.utils.fixes import parse_version

from skbackprop import BackpropMLPClassifier, check_gradients
from skbackprop._network import init_params
from helpers import assert_same_weights, quiet_fit


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=4, n_redundant=0, n_classes=3, random_state=0
    )
    return X, y


# ---------------------------------------------------------------------- lbfgs


def test_lbfgs_matches_mlpclassifier_and_records_the_loss(iris):
    X, y = iris
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0)
    ours = quiet_fit(BackpropMLPClassifier(**params), X, y)
    theirs = quiet_fit(MLPClassifier(**params), X, y)
    assert_same_weights(ours, theirs, rtol=1e-6)
    assert ours.n_iter_ == theirs.n_iter_ == 30
    assert len(ours.loss_curve_) == ours.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    assert ours.loss_curve_[-1] == pytest.approx(ours.loss_, rel=1e-12)
    assert ours.loss_curve_[0] > ours.loss_curve_[-1]


def test_lbfgs_warns_when_max_iter_or_max_fun_ends_it(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        clf = BackpropMLPClassifier((6,), solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3
    with pytest.warns(ConvergenceWarning, match="max_fun=4"):
        clf = BackpropMLPClassifier((6,), solver="lbfgs", max_fun=4, random_state=0).fit(X, y)
    assert clf.n_iter_ <= 4  # scipy finishes the iteration in which max_fun is reached


def test_lbfgs_converges_without_warning(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = BackpropMLPClassifier((5,), solver="lbfgs", alpha=1.0, random_state=0).fit(X, y)
    assert clf.n_iter_ < 200
    assert clf.score(X, y) > 0.9


def test_partial_fit_is_not_offered_for_lbfgs():
    clf = BackpropMLPClassifier(solver="lbfgs")
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        clf.partial_fit
    assert hasattr(BackpropMLPClassifier(solver="sgd"), "partial_fit")


# ----------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    "params",
    [
        dict(learning_rate="invscaling", learning_rate_init=0.5, power_t=0.3),
        dict(learning_rate="adaptive", learning_rate_init=0.2, tol=0.1, n_iter_no_change=2),
        dict(learning_rate="constant", learning_rate_init=0.1),
    ],
    ids=["invscaling", "adaptive", "constant"],
)
def test_schedules_match_mlpclassifier(iris, params):
    X, y = iris
    common = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=25, random_state=1)
    ours = quiet_fit(BackpropMLPClassifier(**common, **params), X, y)
    theirs = quiet_fit(MLPClassifier(**common, **params), X, y)
    assert_same_weights(ours, theirs)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_


def test_adaptive_keeps_training_where_constant_stops(iris):
    X, y = iris
    common = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=0.2, tol=0.1,
                  n_iter_no_change=2, max_iter=200, random_state=1)
    constant = quiet_fit(BackpropMLPClassifier(learning_rate="constant", **common), X, y)
    adaptive = quiet_fit(BackpropMLPClassifier(learning_rate="adaptive", **common), X, y)
    assert adaptive.n_iter_ > constant.n_iter_


# ------------------------------------------------------------ early stopping


def held_out_split(X, y, layer_sizes, activation, seed, fraction):
    """The split that fit draws: the weights first, then the split, from one generator."""
    rng = np.random.RandomState(seed)
    init_params(layer_sizes, activation, rng)
    return train_test_split(X, y, test_size=fraction, random_state=rng, stratify=y)


def test_early_stopping_matches_mlpclassifier_on_binary_targets(iris):
    """MLPClassifier stratifies only binary targets; there the splits are the same."""
    X, y = iris
    y = y == 2
    params = dict(hidden_layer_sizes=(5,), early_stopping=True, validation_fraction=0.2,
                  learning_rate_init=0.01, n_iter_no_change=3, max_iter=300, random_state=0)
    ours = quiet_fit(BackpropMLPClassifier(**params), X, y)
    theirs = quiet_fit(MLPClassifier(**params), X, y)
    assert_same_weights(ours, theirs)
    assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    assert ours.n_iter_ == theirs.n_iter_ > 3


def test_early_stopping_with_a_tol_of_one_validation_sample_stops_as_mlpclassifier():
    """tol = 1 / n_val asks each improvement to get one more held-out sample
    right. MLPClassifier's rule (``score < best + tol``) counts such a gain as
    an improvement; ``score - best < tol`` rounds the other way for most
    scores, and stopped this run 3 epochs earlier."""
    X, y = make_classification(300, 6, flip_y=0.2, random_state=1)  # 30 held out
    params = dict(hidden_layer_sizes=(5,), early_stopping=True, tol=1 / 30, n_iter_no_change=2,
                  learning_rate_init=0.01, max_iter=100, random_state=0)
    ours = quiet_fit(BackpropMLPClassifier(**params), X, y)
    theirs = quiet_fit(MLPClassifier(**params), X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 7
    assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert_same_weights(ours, theirs)


def test_early_stopping_split_is_stratified_for_every_target(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((3,), early_stopping=True, validation_fraction=0.2,
                                          max_iter=1, random_state=0), X, y)
    _, _, _, y_val = held_out_split(X, y, [4, 3, 3], "relu", 0, 0.2)
    assert_array_equal(np.bincount(y_val), [10, 10, 10])
    assert len(clf.validation_scores_) == 1


def test_early_stopping_restores_the_best_weights_and_records_validation_loss(blobs):
    X, y = blobs
    clf = quiet_fit(
        BackpropMLPClassifier((8,), early_stopping=True, validation_fraction=0.25,
                              learning_rate_init=0.05, n_iter_no_change=5, max_iter=300,
                              random_state=3),
        X, y,
    )
    n = clf.n_iter_
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == len(clf.loss_curve_) == n
    best = int(np.argmax(clf.validation_scores_))
    assert best < n - 1  # it trained past its best epoch, then went back
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    _, X_val, _, y_val = held_out_split(X, y, [6, 8, 3], "relu", 3, 0.25)
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)
    # the validation loss is the objective on the held-out rows, at the weights of that epoch
    assert clf.validation_loss_curve_[best] == pytest.approx(clf.loss_gradient(X_val, y_val)[0])


def test_early_stopping_needs_a_large_enough_validation_set(blobs):
    X, y = blobs
    clf = BackpropMLPClassifier(early_stopping=True, validation_fraction=0.01)
    with pytest.raises(ValueError, match="validation set with a sample of each of the 3 classes"):
        clf.fit(X[:100], y[:100])
    assert not hasattr(clf, "coefs_")


def test_early_stopping_on_multilabel_targets_needs_two_validation_samples():
    """As MLPClassifier (of scikit-learn 1.9; 1.6 trains on it): a single
    held-out sample (accuracy 0 or 1) is refused."""
    rng = np.random.RandomState(0)
    X, Y = rng.randn(10, 3), (rng.rand(10, 2) > 0.5).astype(int)  # 10 % of 10: 1 sample
    params = dict(hidden_layer_sizes=(3,), early_stopping=True, max_iter=3, random_state=0)
    if parse_version(sklearn.__version__) >= parse_version("1.9"):
        with pytest.raises(ValueError, match="validation set is too small"):
            MLPClassifier(**params).fit(X, Y)
    clf = BackpropMLPClassifier(**params)
    with pytest.raises(ValueError, match="validation set is too small"):
        clf.fit(X, Y)
    assert not hasattr(clf, "coefs_")
    X, Y = rng.randn(12, 3), (rng.rand(12, 2) > 0.5).astype(int)  # 2 held out: fine
    assert len(quiet_fit(BackpropMLPClassifier(**params), X, Y).validation_scores_) == 3


def test_verbose_prints_validation_scores(iris, capsys):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((3,), early_stopping=True, max_iter=2, verbose=True,
                                          random_state=0), X, y)
    out = capsys.readouterr().out
    assert f"Iteration 2, loss = {clf.loss_curve_[1]:.8f}" in out
    assert f"Validation score: {clf.validation_scores_[1]:f}" in out


# ----------------------------------------------------------------- partial_fit


def test_partial_fit_requires_classes_first_and_rejects_unknown_labels(iris):
    X, y = iris
    clf = BackpropMLPClassifier((4,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "coefs_")
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # a chunk may lack a class
    assert_array_equal(clf.classes_, [0, 1, 2])
    with pytest.raises(ValueError, match=r"labels not seen during fit: \[7\]"):
        clf.partial_fit(X[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        clf.partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("labels, later", [(np.array([0, 1, 2]), [0.0, 1.0, 2.0]),
                                           (np.array([False, True]), [0, 1])])
def test_classes_given_again_to_partial_fit_keep_the_first_calls_labels(iris, labels, later):
    """Equal values, another type: classes_ (and so what predict returns)
    stays as the first call set it, as in MLPClassifier."""
    X, y = iris
    y = labels[y % len(labels)]
    clf = BackpropMLPClassifier((4,), random_state=0).partial_fit(X, y, classes=labels)
    theirs = MLPClassifier((4,), random_state=0).partial_fit(X, y, classes=labels)
    clf.partial_fit(X, y, classes=later)
    theirs.partial_fit(X, y, classes=later)
    assert clf.classes_ is not None and clf.classes_.dtype == labels.dtype
    assert clf.predict(X).dtype == theirs.predict(X).dtype == labels.dtype


def test_partial_fit_runs_one_epoch_per_call(iris):
    X, y = iris
    clf = BackpropMLPClassifier((4,), random_state=0)
    for call in range(1, 4):
        clf.partial_fit(X, y, classes=np.unique(y))
        assert clf.n_iter_ == 1
        assert len(clf.loss_curve_) == call
        assert clf.t_ == call * len(X)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_calls_equal_fit_epochs(iris, solver):
    """The optimizer's state carries over between calls, exactly as between epochs."""
    X, y = iris
    params = dict(hidden_layer_sizes=(4,), solver=solver, shuffle=False, learning_rate_init=0.01,
                  random_state=0)
    fitted = quiet_fit(BackpropMLPClassifier(max_iter=5, **params), X, y)
    streamed = BackpropMLPClassifier(**params)
    for _ in range(5):
        streamed.partial_fit(X, y, classes=np.unique(y))
    assert_same_weights(fitted, streamed, rtol=1e-12)
    assert_allclose(fitted.loss_curve_, streamed.loss_curve_, rtol=1e-12)


def test_partial_fit_matches_mlpclassifier(iris):
    X, y = iris
    ours = BackpropMLPClassifier((5,), solver="sgd", learning_rate_init=0.05, random_state=0)
    theirs = MLPClassifier((5,), solver="sgd", learning_rate_init=0.05, random_state=0)
    for start in range(0, 150, 50):
        ours.partial_fit(X[start:start + 50], y[start:start + 50], classes=[0, 1, 2])
        theirs.partial_fit(X[start:start + 50], y[start:start + 50], classes=[0, 1, 2])
    assert_same_weights(ours, theirs)


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_a_partial_fit_stream_keeps_its_first_rate_as_mlpclassifier(iris, schedule):
    """A learning_rate_init set between partial_fit calls changes neither
    stream: the optimizer (and the 'invscaling' schedule) of MLPClassifier
    keeps the rate it was made with."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate=schedule,
                  learning_rate_init=0.05, power_t=0.25, random_state=0)
    ours, theirs = BackpropMLPClassifier(**params), MLPClassifier(**params)
    for call, start in enumerate(range(0, 150, 30)):
        for model in (ours, theirs):
            if call == 2:
                model.set_params(learning_rate_init=0.001)
            model.partial_fit(X[start:start + 30], y[start:start + 30], classes=[0, 1, 2])
    assert_same_weights(ours, theirs)
    unchanged = BackpropMLPClassifier(**params)
    for start in range(0, 150, 30):
        unchanged.partial_fit(X[start:start + 30], y[start:start + 30], classes=[0, 1, 2])
    assert_same_weights(ours, unchanged, rtol=1e-12)


def test_betas_changed_in_a_partial_fit_stream_apply_to_the_same_moments(iris):
    """Adam keeps sums of the gradients (its moments divided by 1 - beta):
    after set_params(beta_1=..., beta_2=...), the next call goes on from the
    same moments m and v with the new betas, as classic Adam (and 0.1.0)
    would; the step is computed here from the public gradient."""
    X, y = iris
    X, y = X[::3], y[::3]  # 50 rows: one full-batch step per call
    model = BackpropMLPClassifier((5,), batch_size=50, learning_rate_init=0.01,
                                  random_state=0)
    for _ in range(3):
        model.partial_fit(X, y, classes=[0, 1, 2])
    state = model._stochastic_state.optimizer_state
    m, v = 0.1 * state.grad_sum[0], 0.001 * state.square_sum[0]  # the default betas'
    b1, b2, eps, lr, t = 0.5, 0.9, model.epsilon, 0.01, state.step + 1
    _, coef_grads, intercept_grads = model.loss_gradient(X, y)
    theta = np.concatenate([a.ravel() for a in model.coefs_ + model.intercepts_])
    g = np.concatenate([a.ravel() for a in coef_grads + intercept_grads])
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
    expected = theta - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    model.set_params(beta_1=b1, beta_2=b2).partial_fit(X, y)
    got = np.concatenate([a.ravel() for a in model.coefs_ + model.intercepts_])
    assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_partial_fit_refuses_early_stopping_and_balanced_class_weight(iris):
    X, y = iris
    with pytest.raises(ValueError, match="early_stopping"):
        BackpropMLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="class_weight='balanced'"):
        BackpropMLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


# ------------------------------------------------------------ sample weights

FULL_BATCH = dict(hidden_layer_sizes=(5,), activation="tanh", solver="sgd", momentum=0.5,
                  learning_rate_init=0.1, shuffle=False, max_iter=30, tol=0.0,
                  n_iter_no_change=np.inf, random_state=0)


def test_integer_weights_equal_repeated_rows(blobs):
    X, y = blobs
    w = np.random.RandomState(0).randint(1, 4, len(X))
    weighted = quiet_fit(BackpropMLPClassifier(batch_size=len(X), **FULL_BATCH), X, y,
                         sample_weight=w)
    repeated = quiet_fit(BackpropMLPClassifier(batch_size=int(w.sum()), **FULL_BATCH),
                         np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_same_weights(weighted, repeated, rtol=1e-10)
    assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-12)
    assert weighted.t_ == repeated.t_ == 30 * w.sum()


def test_zero_weights_equal_dropped_rows(blobs):
    X, y = blobs
    keep = np.arange(len(X)) % 3 != 0
    w = keep.astype(float)
    weighted = quiet_fit(BackpropMLPClassifier(batch_size=len(X), **FULL_BATCH), X, y,
                         sample_weight=w)
    dropped = quiet_fit(BackpropMLPClassifier(batch_size=int(keep.sum()), **FULL_BATCH),
                        X[keep], y[keep])
    assert_same_weights(weighted, dropped, rtol=1e-10)
    lbfgs_weighted = quiet_fit(BackpropMLPClassifier((5,), solver="lbfgs", max_iter=20,
                                                     random_state=0), X, y, sample_weight=w)
    lbfgs_dropped = quiet_fit(BackpropMLPClassifier((5,), solver="lbfgs", max_iter=20,
                                                    random_state=0), X[keep], y[keep])
    assert_same_weights(lbfgs_weighted, lbfgs_dropped, rtol=1e-8)


def test_partial_fit_and_score_take_sample_weights(blobs):
    X, y = blobs
    w = np.random.RandomState(1).randint(0, 3, len(X))
    a = BackpropMLPClassifier((5,), shuffle=False, batch_size=len(X), random_state=0)
    b = BackpropMLPClassifier((5,), shuffle=False, batch_size=int(w.sum()), random_state=0)
    a.partial_fit(X, y, classes=[0, 1, 2], sample_weight=w)
    b.partial_fit(np.repeat(X, w, axis=0), np.repeat(y, w), classes=[0, 1, 2])
    assert_same_weights(a, b, rtol=1e-10)
    correct = a.predict(X) == y
    assert a.score(X, y, sample_weight=w) == pytest.approx(w @ correct / w.sum())


def test_sample_weights_are_routed_through_a_pipeline(blobs):
    X, y = blobs
    w = np.random.RandomState(2).randint(0, 3, len(X)).astype(float)
    with config_context(enable_metadata_routing=True):
        clf = BackpropMLPClassifier((5,), max_iter=20, random_state=0).set_fit_request(
            sample_weight=True
        )
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = quiet_fit(make_pipeline(scaler, clf), X, y, sample_weight=w)
    direct = quiet_fit(BackpropMLPClassifier((5,), max_iter=20, random_state=0),
                       StandardScaler().fit_transform(X), y, sample_weight=w)
    assert_same_weights(pipe[-1], direct, rtol=1e-12)
    unweighted = quiet_fit(BackpropMLPClassifier((5,), max_iter=20, random_state=0),
                           StandardScaler().fit_transform(X), y)
    assert not np.allclose(pipe[-1].coefs_[0], unweighted.coefs_[0])


@pytest.mark.parametrize(
    "weights, message",
    [(-np.ones(150), "(?i)negative"), (np.zeros(150), "non-zero|sum to zero"),
     (np.ones(3), "shape")],
)
def test_bad_sample_weights(iris, weights, message):
    X, y = iris
    clf = BackpropMLPClassifier()
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, sample_weight=weights)
    assert not hasattr(clf, "coefs_")


# ------------------------------------------------------------- class weights


def test_balanced_class_weight_equals_balanced_sample_weight(blobs):
    X, y = blobs
    X, y = X[:90], y[:90]
    y = np.where(y == 2, 1, y)  # imbalanced: class 1 is twice as frequent
    by_class = quiet_fit(BackpropMLPClassifier(class_weight="balanced", max_iter=15,
                                               random_state=0), X, y)
    by_sample = quiet_fit(BackpropMLPClassifier(max_iter=15, random_state=0), X, y,
                          sample_weight=compute_sample_weight("balanced", y))
    assert_same_weights(by_class, by_sample, rtol=1e-12)


def test_balanced_class_weight_of_rows_that_lack_a_class(blobs):
    """loss_gradient (and check_gradients) on a few rows that lack a class:
    'balanced' weighs the classes present, with the same formula."""
    X, y = blobs
    clf = quiet_fit(BackpropMLPClassifier((5,), class_weight="balanced", max_iter=5,
                                          random_state=0), X, y)
    rows = np.flatnonzero(y != 2)[:10]
    present = y[rows]
    expected = compute_sample_weight("balanced", present)  # over the classes in present
    plain = BackpropMLPClassifier((5,), max_iter=5, random_state=0)
    plain.__dict__.update({k: v for k, v in vars(clf).items() if k.endswith("_")})
    ours = clf.loss_gradient(X[rows], present)
    reference = plain.loss_gradient(X[rows], present, sample_weight=expected)
    assert ours[0] == reference[0]
    for a, b in zip(ours[1] + ours[2], reference[1] + reference[2]):
        assert_array_equal(a, b)
    assert check_gradients(clf, X[rows], present) < 1e-4
    # on rows with every class, the weights are those of fit
    full = clf.loss_gradient(X, y)[0]
    assert full == plain.loss_gradient(X, y, sample_weight=compute_sample_weight("balanced", y))[0]


def test_dict_class_weight_multiplies_sample_weight(blobs):
    X, y = blobs
    w = np.random.RandomState(3).uniform(0.5, 2, len(X))
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    by_class = quiet_fit(BackpropMLPClassifier(class_weight=class_weight, max_iter=10,
                                               random_state=0), X, y, sample_weight=w)
    by_sample = quiet_fit(BackpropMLPClassifier(max_iter=10, random_state=0), X, y,
                          sample_weight=w * np.array([1.0, 3.0, 0.5])[y])
    assert_same_weights(by_class, by_sample, rtol=1e-12)


def test_partial_fit_chunks_may_lack_classes_named_in_class_weight(blobs):
    """A dict is looked up over all the classes given to partial_fit: a chunk
    without class 0 trains with the other classes' weights (1 if unnamed)."""
    X, y = blobs
    rest = y > 0
    clf = BackpropMLPClassifier(class_weight={0: 5.0}, random_state=0)
    clf.partial_fit(X[rest], y[rest], classes=[0, 1, 2])
    plain = BackpropMLPClassifier(random_state=0).partial_fit(X[rest], y[rest],
                                                              classes=[0, 1, 2])
    assert_same_weights(clf, plain, rtol=1e-12)  # the chunk's classes all weigh 1
    clf.partial_fit(X, y)
    loss, *_ = clf.loss_gradient(X, y)
    unweighted = clf.set_params(class_weight=None).loss_gradient(X, y, np.where(y == 0, 5.0, 1.0))
    assert loss == pytest.approx(unweighted[0], rel=1e-12)


def test_class_weight_shifts_predictions_towards_the_heavy_class(blobs):
    X, y = blobs
    plain = quiet_fit(BackpropMLPClassifier((5,), max_iter=100, random_state=0), X, y)
    heavy = quiet_fit(BackpropMLPClassifier((5,), max_iter=100, class_weight={0: 1, 1: 1, 2: 20},
                                            random_state=0), X, y)
    assert (heavy.predict(X) == 2).sum() > (plain.predict(X) == 2).sum()


@pytest.mark.parametrize("class_weight", [None, "balanced", {0: 2.0, 1: 0.5, 2: 1.0}])
def test_weighted_gradients_match_finite_differences(blobs, class_weight):
    X, y = blobs
    X, y = X[:40], y[:40]
    w = np.random.RandomState(4).uniform(0, 3, len(X))
    clf = quiet_fit(BackpropMLPClassifier((4, 3), activation="tanh", alpha=0.1, max_iter=3,
                                          class_weight=class_weight, random_state=0), X, y)
    assert check_gradients(clf, X, y, sample_weight=w) < 1e-4
    # and the weights matter: the weighted loss is not the unweighted one
    assert clf.loss_gradient(X, y, sample_weight=w)[0] != pytest.approx(clf.loss_gradient(X, y)[0])


# ---------------------------------------------------------- divergence guard


def test_divergence_is_caught_and_the_best_weights_kept(iris):
    X, y = iris
    X = X * 1e3
    params = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=10.0, max_iter=50,
                  random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"learning_rate_init=10.0 is probably too large; "
                                                r"try a smaller one, such as 1\b"):
        clf = BackpropMLPClassifier(**params).fit(X, y)
    assert clf.diverged_ is True
    assert all(np.isfinite(p).all() for p in clf.coefs_ + clf.intercepts_)
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    curve = np.array(clf.loss_curve_)
    assert clf.n_iter_ < 50
    assert clf.best_loss_ == min(curve[np.isfinite(curve)])
    assert curve[-1] > 100 * max(clf.best_loss_, 1) or not np.isfinite(curve[-1])
    assert np.isfinite(clf.loss_)
    # MLPClassifier, with the same settings, lets the loss climb without a word of warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = MLPClassifier(**params).fit(X, y)
    assert max(theirs.loss_curve_) > 1e6 * min(theirs.loss_curve_)


def test_divergence_in_the_first_epoch_keeps_the_initial_weights(iris):
    X, y = iris
    clf = BackpropMLPClassifier((5,), solver="sgd", learning_rate_init=10.0, max_iter=5,
                                batch_size=10, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"diverged in epoch 1: .* The starting weights "
                                                r"were restored \(no epoch before the "
                                                r"explosion had improved the loss\)"):
        clf.fit(X * 1e100, y)
    start = init_params([4, 5, 3], "relu", np.random.RandomState(0))
    for a, b in zip(clf.coefs_, start[0]):
        assert_array_equal(a, b)
    assert np.isfinite(clf.predict_proba(X)).all()


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_recovers_from_a_divergence_on_one_bad_chunk(solver):
    """The guard restores the weights; the optimizer's memory, which exploded
    with them, is forgotten, so that good chunks afterwards train normally."""
    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    clf = BackpropMLPClassifier((10,), solver=solver, learning_rate_init=0.05, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    assert clf.diverged_ is False
    with pytest.warns(ConvergenceWarning, match="diverged"):
        clf.partial_fit(X * 1e4, y)
    assert clf.diverged_ is True
    state = clf._stochastic_state.optimizer_state
    for field in state:
        if isinstance(field, tuple):
            assert all(not a.any() for a in field)  # a fresh state: zero velocity / moments
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # no further divergence
        for _ in range(20):
            clf.partial_fit(X, y)
    assert max(clf.loss_curve_[-20:]) < 1.0
    assert clf.score(X, y) > 0.8
    assert clf.diverged_ is False  # it tells of the last call


def _drifted_stream():
    """A model fitted (loss about 4e-4) on well separated data, and a chunk
    from a drifted stream: scaled up, with the labels flipped. Its loss at
    the incoming weights is about 144, far above 100 times the best loss."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 2)
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] += np.where(y == 1, 3, -3)
    clf = BackpropMLPClassifier((5,), alpha=0.0, max_iter=300, learning_rate_init=0.05,
                                random_state=0)
    return quiet_fit(clf, X, y), X[:20] * 20, 1 - y[:20]


def test_a_warm_fit_on_new_data_the_model_fits_badly_is_no_explosion():
    """A fit's guard compares only its own epochs: a warm_start refit on data
    far from the old (loss about 144, 100 times the old best loss and more)
    trains on it, as MLPClassifier would."""
    clf, X_new, y_new = _drifted_stream()
    assert clf.best_loss_ < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.filterwarnings("ignore", "Stochastic Optimizer", ConvergenceWarning)
        clf.set_params(warm_start=True, learning_rate_init=0.02, max_iter=20, batch_size=5,
                       n_iter_no_change=10**9).fit(X_new, y_new)
    assert clf.n_iter_ == 20 and not clf.diverged_
    assert clf.loss_curve_[-20] > 100 and clf.loss_curve_[-1] < 1.0
    assert clf.score(X_new, y_new) == 1.0


def test_partial_fit_on_new_data_says_the_loss_was_high_before_any_step():
    """partial_fit's guard watches the whole stream: a chunk whose loss is
    past 100 times the best of the earlier calls trips it even before any
    step, and the warning says so, and what to do if the data changed."""
    clf, X_new, y_new = _drifted_stream()
    start = [a.copy() for a in clf.coefs_ + clf.intercepts_]
    with pytest.warns(ConvergenceWarning, match=(
            r"(?s)on this call's first minibatch already, before any step.*"
            r"If the data changed, fit a model on them")):
        clf.set_params(learning_rate_init=1e-3).partial_fit(X_new, y_new)
    assert clf.diverged_
    for a, b in zip(clf.coefs_ + clf.intercepts_, start):
        assert_array_equal(a, b)


def test_a_partial_fit_stream_that_diverges_is_caught():
    """Chunks of one minibatch each: each call's loss is measured before its
    one step, so only the comparison with the earlier calls sees the loss
    climb. The warning names both causes it cannot tell apart, the previous
    step first, and says how to use a smaller rate."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = BackpropMLPClassifier((30,), solver="sgd", learning_rate_init=2.0, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for call in range(20):
            rows = slice(call * 50, call * 50 + 50)
            clf.partial_fit(X[rows], y[rows], classes=np.arange(10))
            if clf.diverged_:
                break
    assert clf.diverged_ and call < 10, call
    message = str(caught[-1].message)
    assert "before any step: the last step of the previous call exploded" in message
    assert ("learning_rate_init=2.0, the rate this partial_fit stream started with, is "
            "probably too large. A stream keeps that rate, as MLPClassifier's does, even when "
            "set_params changes learning_rate_init: start a new stream with a smaller one, "
            "such as 0.2, with fit or with partial_fit on a clone.") in message
    assert max(clf.loss_curve_[:-1]) <= 100 * max(min(clf.loss_curve_), 1)


def test_only_partial_fit_says_the_loss_was_high_before_any_step(iris):
    """A fit's guard has no earlier best: a non-finite first loss there is
    blamed on the learning rate alone, without talk of earlier calls."""
    X, y = iris
    huge = X / X.max() * 1e308  # finite, but the first loss is not
    for call in (lambda clf: clf.fit(huge, y),
                 lambda clf: clf.partial_fit(huge, y, classes=[0, 1, 2])):
        clf = BackpropMLPClassifier((5,), random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(clf)
        diverged = [str(w.message) for w in caught if "diverged" in str(w.message)]
        assert len(diverged) == 1 and clf.diverged_
        assert "earlier calls" not in diverged[0]
        assert "probably too large" in diverged[0]


def test_lbfgs_meeting_a_non_finite_loss_keeps_the_starting_weights(iris):
    X, y = iris
    clf = BackpropMLPClassifier((5,), solver="lbfgs", alpha=1e308, random_state=0)
    with pytest.warns(ConvergenceWarning, match="L-BFGS reached a non-finite loss"):
        clf.fit(X, y)
    assert clf.diverged_ is True
    start = init_params([4, 5, 3], "relu", np.random.RandomState(0))
    for a, b in zip(clf.coefs_ + clf.intercepts_, start[0] + start[1]):
        assert_array_equal(a, b)
    clf.set_params(alpha=1e-4).fit(X, y)
    assert clf.diverged_ is False


# ------------------------------------------------------- continuing training


def test_partial_fit_after_early_stopping_watches_the_training_loss_afresh(iris):
    """The previous fit's best was a validation accuracy; partial_fit never
    validates, so its best loss and stopping count start anew, and a warm
    fit after it is not cut short by a best loss no epoch reached."""
    X, y = iris
    X = StandardScaler().fit_transform(X)
    clf = quiet_fit(BackpropMLPClassifier((4,), early_stopping=True, max_iter=30,
                                          random_state=0), X, y)
    assert clf.best_loss_ is None
    clf.set_params(early_stopping=False).partial_fit(X, y)
    assert clf.best_loss_ == clf.loss_curve_[-1]  # the one epoch of this call
    assert clf.best_validation_score_ is None and clf.validation_scores_ is None
    clf.set_params(warm_start=True, max_iter=30)
    quiet_fit(clf, X, y)
    assert clf.n_iter_ == 30  # the loss keeps improving: no early end
    assert clf.best_loss_ == min(clf.loss_curve_[-30:])


def test_warm_start_may_switch_early_stopping_on(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((4,), warm_start=True, max_iter=5, random_state=0), X, y)
    assert clf.best_validation_score_ is None
    clf.set_params(early_stopping=True)
    quiet_fit(clf, X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_partial_fit_after_a_change_of_solver_starts_a_fresh_optimizer(iris):
    X, y = iris
    clf = BackpropMLPClassifier((4,), solver="sgd", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.set_params(solver="adam")
    clf.partial_fit(X, y)
    assert clf.t_ == 2 * len(X)
    assert len(clf.loss_curve_) == 2
    assert all(np.isfinite(p).all() for p in clf.coefs_)


def test_divergence_keeps_the_starting_weights_when_they_fit_better(iris):
    """With a full batch and a huge step, the weights saved after the best
    epoch have exploded already; the starting weights are the better choice."""
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="starting weights were restored"):
        clf = BackpropMLPClassifier((20,), solver="sgd", learning_rate_init=1000.0,
                                    max_iter=50, random_state=0).fit(X, y)
    start = init_params([4, 20, 3], "relu", np.random.RandomState(0))
    for a, b in zip(clf.coefs_ + clf.intercepts_, start[0] + start[1]):
        assert_array_equal(a, b)
    assert clf.loss_ == pytest.approx(clf.loss_curve_[0])  # full batch: the loss at the start


def test_lbfgs_counts_samples_by_weight_and_a_later_partial_fit_starts_afresh(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((4,), solver="lbfgs", max_iter=5, random_state=0),
                    X, y, sample_weight=np.full(len(X), 2.0))
    assert clf.t_ == 5 * 2 * len(X)
    clf = quiet_fit(BackpropMLPClassifier((4,), solver="adam", max_iter=3, random_state=0), X, y)
    clf.set_params(solver="lbfgs", warm_start=True, max_iter=5)
    quiet_fit(clf, X, y)
    t_after_lbfgs = clf.t_
    clf.set_params(solver="adam")
    clf.partial_fit(X, y)
    assert clf.t_ == t_after_lbfgs + len(X)  # not the adam fit's count, resumed
