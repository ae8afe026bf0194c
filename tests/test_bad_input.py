"""Bad input gets a clear exception that names the problem, and a failed fit
leaves the estimator exactly as it was.

Every test asserts the exception type *and* (with ``match=``) that the message
names what is wrong.
"""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from skbackprop import BackpropMLPClassifier
from helpers import quiet_fit


# --------------------------------------------------------------------- data


def make_data(n_samples=30, n_features=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = np.arange(n_samples) % 2
    return X, y


def small(**params):
    defaults = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    defaults.update(params)
    return BackpropMLPClassifier(**defaults)


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return quiet_fit(small(), X, y)


def with_value(X, value, row=2, col=1):
    """A copy of ``X`` with ``X[row, col] = value``, in a dtype that can hold it."""
    if isinstance(value, complex):
        Z = X.astype(np.complex128)
    elif isinstance(value, str):
        Z = X.astype(object)
    else:
        Z = X.copy()
    Z[row, col] = value
    return Z


# Each entry: (id, value put into X, pattern the message must contain).
NON_FINITE_OR_NON_NUMERIC = [
    ("nan", np.nan, r"Input X contains NaN"),
    ("+inf", np.inf, r"Input X contains infinity"),
    ("-inf", -np.inf, r"Input X contains infinity"),
    ("complex", 1.0 + 2.0j, r"[Cc]omplex data not supported"),
    ("string", "abc", r"could not convert string to float: 'abc'"),
]

PREDICT_METHODS = ["predict", "predict_proba", "predict_log_proba"]


# ------------------------------------------------------------ bad X values


@pytest.mark.parametrize(
    "value, pattern",
    [case[1:] for case in NON_FINITE_OR_NON_NUMERIC],
    ids=[case[0] for case in NON_FINITE_OR_NON_NUMERIC],
)
def test_fit_rejects_bad_values_in_X(data, value, pattern):
    X, y = data
    est = small()
    with pytest.raises(ValueError, match=pattern):
        est.fit(with_value(X, value), y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("method", PREDICT_METHODS)
@pytest.mark.parametrize(
    "value, pattern",
    [case[1:] for case in NON_FINITE_OR_NON_NUMERIC],
    ids=[case[0] for case in NON_FINITE_OR_NON_NUMERIC],
)
def test_predict_rejects_bad_values_in_X(data, fitted, method, value, pattern):
    X, _ = data
    with pytest.raises(ValueError, match=pattern):
        getattr(fitted, method)(with_value(X, value))


def frame_with_string_column(X):
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    df["f1"] = ["red", "green", "blue"] * (len(df) // 3) + ["red"] * (len(df) % 3)
    return df


def test_fit_rejects_dataframe_with_string_column(data):
    X, y = data
    est = small()
    with pytest.raises(ValueError, match=r"could not convert string to float: '(red|green|blue)'"):
        est.fit(frame_with_string_column(X), y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("method", PREDICT_METHODS)
def test_predict_rejects_dataframe_with_string_column(data, method):
    X, y = data
    est = quiet_fit(small(), pd.DataFrame(X, columns=["f0", "f1", "f2"]), y)
    with pytest.raises(ValueError, match=r"could not convert string to float: '(red|green|blue)'"):
        getattr(est, method)(frame_with_string_column(X))


@pytest.mark.parametrize("where", ["fit", "predict_proba"])
@pytest.mark.parametrize(
    "value, pattern",
    [(np.nan, r"Input X contains NaN"), (np.inf, r"Input X contains infinity")],
    ids=["nan", "inf"],
)
def test_sparse_X_with_non_finite_values_is_rejected(data, fitted, where, value, pattern):
    if not BackpropMLPClassifier().__sklearn_tags__().input_tags.sparse:
        pytest.skip("this version does not accept sparse X")
    sparse = pytest.importorskip("scipy.sparse")
    X, y = data
    Xs = sparse.csr_matrix(with_value(X, value))
    if where == "fit":
        est = small()
        with pytest.raises(ValueError, match=pattern):
            est.fit(Xs, y)
        assert not hasattr(est, "coefs_")
    else:
        with pytest.raises(ValueError, match=pattern):
            fitted.predict_proba(Xs)


# ------------------------------------------------------------ bad X shapes


BAD_SHAPES = [
    ("0 rows", (0, 3), r"Found array with 0 sample\(s\) \(shape=\(0, 3\)\)"),
    ("0 features", (30, 0), r"Found array with 0 feature\(s\) \(shape=\(30, 0\)\)"),
    ("3-D", (30, 3, 2), r"Found array with dim 3"),
]


@pytest.mark.parametrize(
    "shape, pattern", [c[1:] for c in BAD_SHAPES], ids=[c[0] for c in BAD_SHAPES]
)
def test_fit_rejects_bad_shapes(shape, pattern):
    X = np.zeros(shape)
    y = np.arange(shape[0]) % 2
    est = small()
    with pytest.raises(ValueError, match=pattern):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


PREDICT_BAD_SHAPES = [
    ("0 rows", (0, 3), r"Found array with 0 sample\(s\) \(shape=\(0, 3\)\)"),
    ("0 features", (5, 0), r"Found array with 0 feature\(s\) \(shape=\(5, 0\)\)"),
    ("3-D", (5, 3, 2), r"Found array with dim 3"),
]


@pytest.mark.parametrize("method", PREDICT_METHODS)
@pytest.mark.parametrize(
    "shape, pattern",
    [c[1:] for c in PREDICT_BAD_SHAPES],
    ids=[c[0] for c in PREDICT_BAD_SHAPES],
)
def test_predict_rejects_bad_shapes(fitted, method, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        getattr(fitted, method)(np.zeros(shape))


def test_fit_rejects_1d_X(data):
    X, y = data
    est = small()
    with pytest.raises(ValueError, match=r"Expected 2D array, got 1D array instead"):
        est.fit(X[:, 0], y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("method", PREDICT_METHODS)
def test_predict_rejects_1d_X(data, fitted, method):
    X, _ = data
    with pytest.raises(ValueError, match=r"Expected 2D array, got 1D array instead"):
        getattr(fitted, method)(X[0])


@pytest.mark.parametrize("method", PREDICT_METHODS + ["score"])
@pytest.mark.parametrize("n_features", [2, 4])
def test_predict_rejects_other_number_of_features(data, fitted, method, n_features):
    X, y = data
    Z = np.hstack([X, X])[:, :n_features]
    args = (Z, y) if method == "score" else (Z,)
    pattern = (
        rf"X has {n_features} features, but BackpropMLPClassifier is expecting "
        r"3 features as input"
    )
    with pytest.raises(ValueError, match=pattern):
        getattr(fitted, method)(*args)


# ------------------------------------------------------------------ bad y


@pytest.mark.parametrize("n_y", [29, 31])
def test_fit_rejects_X_and_y_of_different_lengths(data, n_y):
    X, _ = data
    y = np.arange(n_y) % 2
    est = small()
    with pytest.raises(ValueError, match=rf"inconsistent numbers of samples: \[30, {n_y}\]"):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("label", [0, 1.0, "spam"], ids=["int", "float", "str"])
def test_fit_rejects_a_single_class(data, label):
    X, _ = data
    y = np.array([label] * len(X))
    est = small()
    with pytest.raises(ValueError, match=r"only one class"):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


def test_fit_rejects_continuous_y(data):
    X, _ = data
    y = np.array([0.5, 1.7, 2.3] * 10)
    est = small()
    with pytest.raises(ValueError, match=r"Unknown label type: continuous"):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize(
    "y",
    [
        np.where(np.arange(30) == 4, np.nan, np.arange(30) % 2),
        np.array(["a", "b", np.nan] * 10, dtype=object),
        pd.Series([0, 1, None] * 10, dtype="Int64"),
    ],
    ids=["float", "object", "nullable-int"],
)
def test_fit_rejects_nan_in_y(data, y):
    X, _ = data
    est = small()
    with pytest.raises(ValueError, match=r"contains NaN"):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


# -------------------------------------------------------------- not fitted


@pytest.mark.parametrize(
    "method, takes_y",
    [
        ("predict", False),
        ("predict_proba", False),
        ("predict_log_proba", False),
        ("score", True),
        ("loss_gradient", True),
    ],
)
def test_methods_before_fit_raise_not_fitted(data, method, takes_y):
    X, y = data
    est = small()
    args = (X, y) if takes_y else (X,)
    with pytest.raises(NotFittedError, match=r"BackpropMLPClassifier instance is not fitted yet"):
        getattr(est, method)(*args)
    assert not hasattr(est, "coefs_")


# --------------------------------------------------------- bad parameters


BAD_PARAMS = [
    ("hidden_layer_sizes", 0),
    ("hidden_layer_sizes", (10, 0)),
    ("hidden_layer_sizes", (-5,)),
    ("hidden_layer_sizes", (2.5,)),
    ("hidden_layer_sizes", "ten"),
    ("alpha", -1.0),
    ("learning_rate_init", 0),
    ("learning_rate_init", -0.1),
    ("activation", "softplus"),
    ("solver", "newton"),
    ("learning_rate", "fast"),
    ("max_iter", 0),
    ("batch_size", 0),
    ("validation_fraction", 1),
    ("validation_fraction", -0.1),
    ("momentum", -0.1),
    ("momentum", 1.1),
    ("beta_1", 1),
    ("epsilon", 0),
    ("n_iter_no_change", 0),
    ("max_fun", 0),
    ("tol", -1e-3),
    ("class_weight", "auto"),
    ("shuffle", "yes"),
]


def bad_param_pattern(name, value):
    """The message must name the parameter and show the offending value."""
    return rf"(?s)\b{name}\b.*{re.escape(repr(value))}"


@pytest.mark.parametrize(
    "name, value", BAD_PARAMS, ids=[f"{n}={v!r}" for n, v in BAD_PARAMS]
)
def test_fit_rejects_invalid_parameter(data, name, value):
    X, y = data
    est = small(**{name: value})
    with pytest.raises(ValueError, match=bad_param_pattern(name, value)):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize(
    "name, value",
    [p for p in BAD_PARAMS if p[0] != "solver"],
    ids=[f"{n}={v!r}" for n, v in BAD_PARAMS if n != "solver"],
)
def test_partial_fit_rejects_invalid_parameter(data, name, value):
    X, y = data
    est = small(solver="sgd", **{name: value})
    with pytest.raises(ValueError, match=bad_param_pattern(name, value)):
        est.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(est, "coefs_")


def test_invalid_parameters_raise_sklearn_error_type_where_validated_upfront(data):
    """Values caught by the parameter constraints raise sklearn's own
    InvalidParameterError (a ValueError subclass)."""
    X, y = data
    with pytest.raises(InvalidParameterError, match=r"'alpha' parameter"):
        small(alpha=-1.0).fit(X, y)


# --------------------------------------------- weights: bad values are named


@pytest.mark.parametrize(
    "weight, pattern",
    [
        (np.nan, r"sample_weight contains NaN"),
        (np.inf, r"sample_weight contains infinity"),
        (-1.0, r"Negative values in data passed to `sample_weight`"),
    ],
    ids=["nan", "inf", "negative"],
)
def test_fit_rejects_bad_sample_weight(data, weight, pattern):
    X, y = data
    sample_weight = np.ones(len(X))
    sample_weight[3] = weight
    est = small()
    with pytest.raises(ValueError, match=pattern):
        est.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize(
    "weight, pattern",
    [(np.nan, r"class_weight.*(NaN|nan|finite)"), (-2.0, r"class_weight.*(negative|Negative)")],
    ids=["nan", "negative"],
)
def test_fit_rejects_bad_class_weight_values(data, weight, pattern):
    """class_weight values are checked like sample_weight values: a NaN class
    weight (which makes every loss NaN) or a negative one is bad input, not a
    divergence."""
    X, y = data
    est = small(class_weight={0: weight, 1: 1.0})
    with pytest.raises(ValueError, match=pattern):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_weights_that_sum_to_zero_are_refused(data, solver):
    """Class weights of zero zero every sample, even where sample_weight
    does not: a ValueError, not a division by zero."""
    X, y = data
    est = small(solver=solver, class_weight={0: 0.0, 1: 0.0})
    with pytest.raises(ValueError, match="sum to zero: no sample would count"):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")
    est = small(solver=solver, class_weight={0: 0.0})
    with pytest.raises(ValueError, match="sum to zero"):
        est.fit(X, y, sample_weight=(y == 0).astype(float))


def test_partial_fit_and_loss_gradient_refuse_weights_that_sum_to_zero(data, fitted):
    X, y = data
    with pytest.raises(ValueError, match="sum to zero"):
        small(class_weight={0: 0.0, 1: 0.0}).partial_fit(X, y, classes=[0, 1])
    zeroed = copy.deepcopy(fitted).set_params(class_weight={0: 0.0})
    with pytest.raises(ValueError, match="sum to zero"):  # was a NaN loss and gradient
        zeroed.loss_gradient(X[y == 0], y[y == 0])


@pytest.mark.parametrize(
    "dtype, weight",
    [(np.float64, 1e308), (np.float32, 1e38), (np.float64, 1e-320)],
    ids=["sum-overflows", "sum-overflows-float32", "inverse-overflows"],
)
def test_weights_whose_sum_cannot_be_divided_by_are_refused(data, dtype, weight):
    """Each weight is finite, but their sum (or its inverse) is not in the
    data's dtype: the objective would be 0, inf or NaN."""
    X, y = data
    est = small(solver="lbfgs")
    with pytest.raises(ValueError, match="too large or too small to divide by"):
        est.fit(X.astype(dtype), y, sample_weight=np.full(len(X), weight))
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_positive_weight_too_small_for_a_minibatch_is_refused(data, dtype):
    """The total is fine, but a minibatch holding only such weights would
    sum to a number whose inverse overflows: the loss would be NaN and the
    guard would blame the learning rate."""
    X, y = data
    weights = np.ones(len(X))
    weights[:20] = np.finfo(dtype).tiny / 4  # subnormal: not 0, and no divisor
    est = small(batch_size=10)
    with pytest.raises(ValueError, match="below the smallest normal"):
        est.fit(X.astype(dtype), y, sample_weight=weights)
    assert not hasattr(est, "coefs_")
    weights[:20] = np.finfo(dtype).tiny  # the smallest normal number passes
    quiet_fit(est, X.astype(dtype), y, sample_weight=weights)
    weights[:20] = 0.0  # and zeros simply remove rows
    quiet_fit(est, X.astype(dtype), y, sample_weight=weights)
    assert np.isfinite(est.loss_curve_).all()


def test_a_dict_class_weight_with_multilabel_y_is_refused_with_what_to_use(data):
    X, y = data
    Y = np.column_stack([y, 1 - y, y])
    est = small(class_weight={0: 2.0})
    with pytest.raises(ValueError, match="class_weight=None or 'balanced'"):
        est.fit(X, Y)
    assert not hasattr(est, "coefs_")
    quiet_fit(est.set_params(class_weight="balanced"), X, Y)


@pytest.mark.parametrize("weighted_row", ["training", "validation"])
def test_early_stopping_refuses_a_split_without_weight(weighted_row):
    """All the weight on one sample: one side of the split has none."""
    X, y = make_data(n_samples=60)
    est = small(early_stopping=True, validation_fraction=0.2)
    rows = np.arange(60)
    # find a row the split sends to the wanted side (the split is seeded by random_state)
    from sklearn.model_selection import train_test_split
    train_rows, validation_rows = train_test_split(
        rows, test_size=0.2, random_state=np.random.RandomState(0), stratify=y)
    row = (train_rows if weighted_row == "training" else validation_rows)[0]
    sample_weight = (rows == row).astype(float)
    other = "validation" if weighted_row == "training" else "training"
    with pytest.raises(ValueError, match=f"the {other} rows' weights sum to zero"):
        est.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(est, "coefs_")


def test_early_stopping_refuses_a_validation_part_without_some_class():
    """Enough held-out rows for the three classes, but the stratified split
    rounds the two rare ones away: the score would watch class 0 alone."""
    X = np.random.RandomState(0).normal(size=(100, 3))
    y = np.r_[np.zeros(96), 1, 1, 2, 2].astype(int)
    est = small(early_stopping=True, validation_fraction=0.03)
    with pytest.raises(ValueError, match=re.escape("holds no sample of the classes [1, 2]")):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


def test_partial_fit_refuses_a_single_class_for_single_labels(data):
    X, _ = data
    est = small()
    with pytest.raises(ValueError, match="classes has only one class"):
        est.partial_fit(X, np.zeros(len(X)), classes=[0])
    assert not hasattr(est, "coefs_")


def test_the_kind_of_targets_must_match_the_fitted_model(data, fitted):
    """Single labels where the model was fitted on a multilabel matrix, or the
    reverse, are refused with a message that says so (not a shape error)."""
    X, y = data
    indicator = np.column_stack([y, 1 - y])  # two label columns, like classes_ [0, 1]
    with pytest.raises(ValueError, match="y is a multilabel indicator matrix, but the model "
                                         "was fitted on single labels"):
        fitted.loss_gradient(X, indicator)
    warm = copy.deepcopy(fitted).set_params(warm_start=True)
    with pytest.raises(ValueError, match="fitted on single labels"):
        warm.fit(X, indicator)
    with pytest.raises(ValueError, match="fitted on single labels"):
        copy.deepcopy(fitted).partial_fit(X, indicator)
    multilabel = quiet_fit(small(), X, indicator)
    with pytest.raises(ValueError, match="y is single labels, but the model was fitted on "
                                         "a multilabel indicator matrix"):
        multilabel.loss_gradient(X, y)


def test_class_weight_with_a_label_that_is_not_a_class_is_refused(data):
    X, y = data
    for class_weight in ({0: 2.0, 5: 3.0}, {0: 2.0, 1: 1.0, 5: 3.0}):
        est = small(class_weight=class_weight)
        with pytest.raises(ValueError, match=r"class_weight has labels that are not classes: "
                                             r"\[5\]"):
            est.fit(X, y)
        assert not hasattr(est, "coefs_")


# ------------------------------------------------------------ no silent NaN


@pytest.mark.parametrize("method", ["predict_proba", "predict"])
def test_huge_finite_input_never_gives_nan(data, fitted, method):
    """Huge but finite X either gives finite outputs or a ValueError naming
    the non-finite outputs; never NaN."""
    X, _ = data
    try:
        out = getattr(fitted, method)(X * 1e300)
    except ValueError as exc:
        assert "non-finite" in str(exc)
    else:
        if method == "predict_proba":
            assert np.isfinite(out).all()
            assert np.all((out >= 0) & (out <= 1))
        else:
            assert set(out) <= set(fitted.classes_)


def test_two_class_predict_never_hides_a_nan(data):
    """predict of two classes takes its own shortcut past predict_proba: it
    must refuse non-finite outputs as well."""
    X, y = data
    clf = quiet_fit(small(), X, y == y[0])
    clf.coefs_[-1][0, 0] = np.nan
    for method in ("predict", "predict_proba"):
        with pytest.raises(ValueError, match="non-finite outputs"):
            getattr(clf, method)(X)


# --------------------------------------------------- a failed fit undoes all


def deep_equal(a, b):
    """Structural equality that compares arrays element-wise (NaN == NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(deep_equal(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(deep_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    if type(a).__eq__ is object.__eq__:  # no value equality: identity is checked elsewhere
        return True
    try:
        return bool(a == b)
    except Exception:
        return True


class Snapshot:
    """The estimator's attributes: the objects themselves and deep copies of
    their contents (to catch in-place changes)."""

    def __init__(self, est):
        self.refs = dict(vars(est))
        self.copies = {k: copy.deepcopy(v) for k, v in self.refs.items()}
        self.coef_refs = list(getattr(est, "coefs_", []))
        self.intercept_refs = list(getattr(est, "intercepts_", []))

    def assert_unchanged(self, est, ignore=()):
        now = vars(est)
        assert set(now) == set(self.refs), (
            f"attributes added: {sorted(set(now) - set(self.refs))}, "
            f"removed: {sorted(set(self.refs) - set(now))}"
        )
        for name, value in now.items():
            if name in ignore:
                continue
            assert value is self.refs[name], f"{name} was replaced"
            assert deep_equal(value, self.copies[name]), f"{name} was changed in place"
        if self.coef_refs:
            assert all(a is b for a, b in zip(est.coefs_, self.coef_refs))
            assert all(a is b for a, b in zip(est.intercepts_, self.intercept_refs))


def bad_nan_X(X, y):
    return dict(X=with_value(X, np.nan), y=y), r"Input X contains NaN"


def bad_single_class(X, y):
    return dict(X=X, y=np.zeros(len(X), dtype=int)), r"only one class"


def bad_lengths(X, y):
    return dict(X=X, y=y[:-1]), r"inconsistent numbers of samples"


FAILED_FITS = {
    "nan-in-X": (bad_nan_X, {}),
    "single-class": (bad_single_class, {}),
    "different-lengths": (bad_lengths, {}),
    # caught by the parameter constraints, before fit starts
    "bad-param-alpha": (lambda X, y: (dict(X=X, y=y), r"alpha.*-1\.0"), {"alpha": -1.0}),
    # caught inside fit, after the data were validated
    "bad-param-hidden": (
        lambda X, y: (dict(X=X, y=y), r"hidden_layer_sizes.*\(4, 0\)"),
        {"hidden_layer_sizes": (4, 0)},
    ),
    # caught only once the solver starts (the validation split is too small)
    "bad-early-stopping-split": (
        lambda X, y: (dict(X=X, y=y), r"validation_fraction=0\.01"),
        {"early_stopping": True, "validation_fraction": 0.01},
    ),
}


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("case", list(FAILED_FITS))
def test_failed_warm_start_fit_keeps_previous_state(data, solver, case):
    if case == "bad-early-stopping-split" and solver == "lbfgs":
        pytest.skip("lbfgs ignores early_stopping")
    X, y = data
    make_bad, bad_params = FAILED_FITS[case]
    est = quiet_fit(small(solver=solver, warm_start=True), X, y)
    old_params = est.get_params()
    est.set_params(**bad_params)
    before = Snapshot(est)
    coefs_copy = [W.copy() for W in est.coefs_]
    intercepts_copy = [b.copy() for b in est.intercepts_]
    proba_before = est.predict_proba(X)

    kwargs, pattern = make_bad(X, y)
    with pytest.raises(ValueError, match=pattern):
        quiet_fit(est, kwargs["X"], kwargs["y"])

    before.assert_unchanged(est)
    assert all(np.array_equal(a, b) for a, b in zip(est.coefs_, coefs_copy))
    assert all(np.array_equal(a, b) for a, b in zip(est.intercepts_, intercepts_copy))
    # still usable, and exactly as before
    est.set_params(**old_params)
    np.testing.assert_array_equal(est.predict_proba(X), proba_before)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("case", list(FAILED_FITS))
def test_failed_fit_leaves_unfitted_estimator_unfitted(data, solver, case):
    X, y = data
    make_bad, bad_params = FAILED_FITS[case]
    est = small(solver=solver, warm_start=True, **bad_params)
    before = Snapshot(est)

    kwargs, pattern = make_bad(X, y)
    if case == "bad-early-stopping-split" and solver == "lbfgs":
        pytest.skip("lbfgs ignores early_stopping")
    with pytest.raises(ValueError, match=pattern):
        quiet_fit(est, kwargs["X"], kwargs["y"])

    before.assert_unchanged(est)
    assert not hasattr(est, "coefs_")
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def bad_unknown_label(X, y):
    return dict(X=X, y=np.where(np.arange(len(y)) == 3, 7, y)), r"labels not seen during fit: \[7\]"


PARTIAL_FIT_FAILURES = {
    "nan-in-X": bad_nan_X,
    "different-lengths": bad_lengths,
    "unknown-label": bad_unknown_label,
}


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("case", list(PARTIAL_FIT_FAILURES))
def test_failed_partial_fit_keeps_previous_state(data, solver, case):
    """partial_fit carries optimizer state between calls: a failed call must
    not touch it either."""
    X, y = data
    est = small(solver=solver)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1])
    before = Snapshot(est)

    kwargs, pattern = PARTIAL_FIT_FAILURES[case](X, y)
    with pytest.raises(ValueError, match=pattern):
        est.partial_fit(kwargs["X"], kwargs["y"])

    before.assert_unchanged(est)
    # and the next call continues exactly as if the failed one never happened
    twin = small(solver=solver)
    for _ in range(3):
        twin.partial_fit(X, y, classes=[0, 1])
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, twin.coefs_ + twin.intercepts_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "solver, name, value",
    [
        ("sgd", "alpha", -1.0),
        ("adam", "alpha", -1.0),
        ("sgd", "learning_rate_init", -0.1),
        ("adam", "learning_rate_init", -0.1),
        ("sgd", "momentum", 1.1),
        ("adam", "beta_1", 1),
    ],
)
def test_partial_fit_after_fit_still_rejects_invalid_parameter(data, solver, name, value):
    """A parameter made invalid with set_params between two partial_fit calls
    is still bad input: it must raise, naming the parameter, and leave the
    estimator as it was (not train with, e.g., a negative L2 penalty)."""
    X, y = data
    est = small(solver=solver)
    est.partial_fit(X, y, classes=[0, 1])
    est.set_params(**{name: value})
    before = Snapshot(est)
    with pytest.raises(ValueError, match=bad_param_pattern(name, value)):
        est.partial_fit(X, y)
    before.assert_unchanged(est)


class Interrupt(Exception):
    pass


class InterruptAfter:
    """A scikit-learn FitCallback that raises after a given epoch: a fit that
    fails in the middle of training, after the weights have moved. (An
    ordinary exception: KeyboardInterrupt may deliberately be handled
    differently, keeping the weights trained so far.)"""

    def __init__(self, epoch, exc=Interrupt):
        self.epoch, self.exc = epoch, exc

    def setup(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        pass

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        if context.task_name in ("epoch", "iteration") and context.task_id == self.epoch:
            raise self.exc("interrupted by the test")
        return False

    def teardown(self, estimator, context):
        pass


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_fit_failing_mid_training_keeps_previous_state(data, solver):
    pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callbacks")
    X, y = data
    est = quiet_fit(small(solver=solver, warm_start=True, max_iter=10), X, y)
    est.set_callbacks(InterruptAfter(2))
    before = Snapshot(est)
    proba_before = est.predict_proba(X)
    with pytest.raises(Interrupt, match="interrupted by the test"):
        quiet_fit(est, X, y)
    before.assert_unchanged(est)
    np.testing.assert_array_equal(est.predict_proba(X), proba_before)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_failing_mid_training_keeps_previous_state(data, solver):
    pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callbacks")
    X, y = data
    est = small(solver=solver)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1])
    est.set_callbacks(InterruptAfter(0))
    before = Snapshot(est)
    with pytest.raises(Interrupt, match="interrupted by the test"):
        est.partial_fit(X, y)
    before.assert_unchanged(est)


def test_unfitted_fit_failing_mid_training_stays_unfitted(data):
    pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callbacks")
    X, y = data
    est = small(max_iter=10).set_callbacks(InterruptAfter(2))
    before = Snapshot(est)
    with pytest.raises(Interrupt, match="interrupted by the test"):
        quiet_fit(est, X, y)
    before.assert_unchanged(est)
    assert not hasattr(est, "coefs_")
