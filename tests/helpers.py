"""Helpers shared by the test modules (imported as ``from helpers import ...``)."""

import warnings

from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info


def quiet_fit(estimator, X, y, **fit_params):
    """``estimator.fit(X, y)``, without the ConvergenceWarning of a short run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


def assert_same_weights(a, b, rtol=1e-9, atol=1e-12):
    """The two fitted estimators hold the same weights and biases."""
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_allclose(p, q, rtol=rtol, atol=atol)


def blas_limits_now():
    """``(path, thread limit)`` of every BLAS library threadpoolctl sees."""
    return [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
            if lib["user_api"] == "blas"]
