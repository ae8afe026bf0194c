"""scikit-learn's machinery around the estimator: metadata routing, tags,
meta-estimators and pandas inputs, as with MLPClassifier."""

import warnings

import numpy as np
import pytest
from sklearn import config_context
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.exceptions import ConvergenceWarning, UnsetMetadataPassedError
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    TunedThresholdClassifierCV,
    cross_validate,
)
from sklearn.utils import get_tags

from skbackprop import BackpropMLPClassifier

pd = pytest.importorskip("pandas")


def small(**params):
    return BackpropMLPClassifier((5,), solver="lbfgs", max_iter=100, random_state=0, **params)


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_tags_and_methods_are_mlpclassifiers():
    tags = get_tags(BackpropMLPClassifier())
    assert tags.estimator_type == "classifier" and tags.requires_fit
    assert tags.classifier_tags.multi_label and tags.input_tags.sparse
    assert not tags.input_tags.allow_nan
    assert not hasattr(BackpropMLPClassifier(), "decision_function")  # as MLPClassifier


def test_a_router_passing_sample_weight_needs_the_request(iris):
    X, y = iris
    w = np.linspace(0.5, 1.5, len(y))
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(small(), {"alpha": [1e-4, 1.0]}, cv=3)
        with pytest.raises(UnsetMetadataPassedError, match="BackpropMLPClassifier.fit"):
            search.fit(X, y, sample_weight=w)
        requested = small().set_fit_request(sample_weight=True).set_score_request(
            sample_weight=True)
        GridSearchCV(requested, {"alpha": [1e-4, 1.0]}, cv=3).fit(X, y, sample_weight=w)
        routing = BackpropMLPClassifier().set_partial_fit_request(
            sample_weight=True).get_metadata_routing()
        assert routing.consumes("partial_fit", ["sample_weight"]) == {"sample_weight"}
    # without routing, cross_validate's params go to fit
    scores = cross_validate(small(), X, y, params={"sample_weight": w}, cv=3)["test_score"]
    assert len(scores) == 3


def test_meta_estimators(iris):
    X, y = iris
    binary = y > 0
    assert CalibratedClassifierCV(small(), cv=3).fit(X, y).score(X, y) > 0.9
    soft = VotingClassifier([("mlp", small()), ("lr", LogisticRegression())], voting="soft")
    assert soft.fit(X, y).predict_proba(X).shape == (150, 3)
    stack = StackingClassifier([("mlp", small()), ("lr", LogisticRegression())], cv=3)
    assert stack.fit(X, y).score(X, y) > 0.9
    frozen = FrozenEstimator(small().fit(X, binary))
    assert CalibratedClassifierCV(frozen).fit(X, binary).score(X, binary) > 0.9
    tuned = TunedThresholdClassifierCV(small(), cv=3).fit(X, binary)
    assert 0 <= tuned.best_threshold_ <= 1
    halving = HalvingGridSearchCV(
        BackpropMLPClassifier((5,), random_state=0), {"alpha": [1e-4, 1e-2]},
        resource="max_iter", min_resources=10, max_resources=40, factor=2, cv=3,
    ).fit(X, y)
    assert halving.best_params_["max_iter"] in (20, 40)


def test_pandas_nullable_sparse_and_category_columns(iris):
    X, y = iris
    frame = pd.DataFrame(np.round(X * 10), columns=list("abcd"))
    plain = small().fit(frame.to_numpy(), y)
    nullable = small().fit(frame.astype("Int64"), y)
    np.testing.assert_allclose(nullable.predict_proba(frame.astype("Int64")),
                               plain.predict_proba(frame.to_numpy()))
    with_bool = frame.assign(e=(frame.a > 0).astype("boolean"))
    assert small().fit(with_bool, y).n_features_in_ == 5
    sparse_frame = frame.astype(pd.SparseDtype(float, 0.0))
    np.testing.assert_allclose(small().fit(sparse_frame, y).predict_proba(frame),
                               plain.predict_proba(frame.to_numpy()))
    with_category = frame.assign(e=pd.Categorical(np.where(frame.a > 0, "x", "y")))
    with pytest.raises(ValueError, match="could not convert string to float"):
        small().fit(with_category, y)  # as MLPClassifier: encode categories first
    missing = frame.astype("Int64")
    missing.iloc[0, 0] = pd.NA
    with pytest.raises(ValueError, match="NaN"):
        small().fit(missing, y)
