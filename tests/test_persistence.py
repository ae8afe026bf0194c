"""A model saved by an earlier version still loads and predicts the same."""

import importlib.util
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import InconsistentVersionWarning

FIXTURES = Path(__file__).parent / "fixtures"
SAVED = sorted(FIXTURES.glob("model-*.joblib"))


def fixture_module():
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURES / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_a_saved_model():
    assert SAVED, "tests/fixtures holds no saved model"


@pytest.mark.parametrize("path", SAVED, ids=[p.name for p in SAVED])
def test_saved_model_loads_and_predicts_as_when_saved(path):
    with warnings.catch_warnings():
        # saved under another scikit-learn version: expected, and harmless here
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        model = joblib.load(path)
    expected = np.load(path.with_name(path.stem + "-expected.npz"))
    X, _ = fixture_module().fixture_data()
    assert_allclose(model.predict_proba(X), expected["proba"], rtol=1e-10, atol=1e-14)
    assert_array_equal(model.predict(X), expected["labels"])
    # and it can go on training
    model.partial_fit(X[:20], expected["labels"][:20])
    assert len(model.loss_curve_) > 1


def test_adam_state_saved_by_0_1_0_goes_on_with_classic_adams_step():
    """0.1.0 saved Adam's moments m and v; later versions keep their sums.
    partial_fit on the saved model takes the step that classic Adam takes
    from the saved moments, computed here from the public gradient."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        model = joblib.load(FIXTURES / "model-0.1.0.joblib")
    saved = model._stochastic_state.optimizer_state
    assert type(saved).__name__ == "AdamState"  # the moments themselves
    X, _ = fixture_module().fixture_data()
    X, y = X[:20], model.predict(X[:20])  # 20 rows: one full-batch step
    _, coef_grads, intercept_grads = model.loss_gradient(X, y)
    theta = np.concatenate([a.ravel() for a in model.coefs_ + model.intercepts_])
    g = np.concatenate([a.ravel() for a in coef_grads + intercept_grads])
    (m,), (v,), t = saved.m, saved.v, saved.step + 1
    b1, b2, eps, lr = model.beta_1, model.beta_2, model.epsilon, model.learning_rate_init
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
    expected = theta - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    model.partial_fit(X, y)
    got = np.concatenate([a.ravel() for a in model.coefs_ + model.intercepts_])
    assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert type(model._stochastic_state.optimizer_state).__name__ == "AdamSums"
