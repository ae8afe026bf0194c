"""Fixtures shared by several test modules."""

import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def iris():
    """The iris data, standardised: ``(X, y)`` with 150 rows and 3 classes.

    ``tests/test_cli.py`` defines its own ``iris`` (a DataFrame), which
    takes precedence there.
    """
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y
