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
