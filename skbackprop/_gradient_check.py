"""Check the hand-derived gradients against finite differences."""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from ._estimator import BackpropMLPClassifier, _check_finite_objective

# Derivatives smaller than _FLOOR * max(1, |J|) are compared absolutely, not
# relatively. In float64 with epsilon=1e-6, rounding alone moves the difference
# quotient by about 1e-10 * |J|, so tinier derivatives cannot be resolved.
_FLOOR = 1e-5


def check_gradients(estimator, X, y, epsilon=1e-6, *, sample_weight=None):
    """Compare a fitted estimator's gradients with central finite differences.

    For every weight and bias ``w``, the analytic derivative is compared
    with::

        (J(w + epsilon) - J(w - epsilon)) / (2 epsilon)

    the other parameters held fixed, where ``J`` is the objective of
    :meth:`BackpropMLPClassifier.loss_gradient`. Two analytic derivatives
    are compared: the reference one that ``loss_gradient`` returns (the
    readable functions of ``skbackprop._network``), and the one ``fit``
    computes (the fused, in-place code of ``skbackprop._fast``). A slip in
    either code shows.

    The error of each parameter is
    ``|a - n| / max(|a| + |n|, 1e-5 * max(1, |J|))``: relative where the
    derivatives are large enough for finite differences to resolve, and
    absolute (scaled) below that, where rounding in ``J`` would swamp a
    relative comparison.

    Both gradients are computed in float64, from the estimator's weights,
    whatever the estimator's dtype. The check costs two evaluations of the
    objective on all of ``X`` per parameter: use a small network, or a few
    rows of ``X``.

    Parameters
    ----------
    estimator : BackpropMLPClassifier
        A fitted estimator; its weights are where the gradient is checked.
        They are left unchanged.
    X : array-like of shape (n_samples, n_features)
        The samples.
    y : array-like of shape (n_samples,)
        Their labels.
    epsilon : float, default=1e-6
        The finite-difference step: a positive finite number.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights of the objective, as in ``fit``; the estimator's
        ``class_weight`` applies as well.

    Returns
    -------
    max_error : float
        The largest error over all weights and biases, and over both analytic
        gradients. Correct gradients give about 1e-5 or less (rounding in the
        finite differences sets that limit). A wrong formula usually gives
        errors of order 0.1 to 1, but a wrong term that is small beside the
        others gives a small error: check with a large ``alpha`` (say 1) on
        a few rows, so that the penalty's gradient counts as much as the
        data's.

    Raises
    ------
    TypeError
        If ``estimator`` is not a :class:`BackpropMLPClassifier`.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted yet.
    ValueError
        If ``epsilon`` is not a positive finite number, or if the objective
        or its gradient is not finite at the estimator's weights (values
        that overflow): there is nothing to check there.

    Notes
    -----
    ReLU has a kink at 0. When a sample's pre-activation lies within
    ``epsilon`` of it, the finite difference straddles the kink and differs
    from the (one-sided) analytic derivative, so a correct gradient can show a
    large error. Smooth activations (tanh, logistic), or data where no unit
    sits at its kink, give a clean check.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.datasets import load_iris
    >>> from skbackprop import BackpropMLPClassifier, check_gradients
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BackpropMLPClassifier(hidden_layer_sizes=(5, 4), activation="tanh",
    ...                             max_iter=3, random_state=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # three epochs do not converge
    ...     clf = clf.fit(X, y)
    >>> bool(check_gradients(clf, X, y) < 1e-4)
    True
    """
    # InvalidParameterError, as scikit-learn raises for its own functions'
    # arguments, is both a TypeError and a ValueError.
    if not isinstance(estimator, BackpropMLPClassifier):
        raise InvalidParameterError(
            "The 'estimator' parameter of check_gradients must be a fitted "
            f"BackpropMLPClassifier. Got an instance of {type(estimator).__name__} instead."
        )
    check_is_fitted(estimator)
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or not 0 < epsilon < np.inf:
        raise InvalidParameterError(
            "The 'epsilon' parameter of check_gradients must be a positive finite "
            f"number. Got {epsilon!r} instead."
        )
    # float64 throughout, whatever the model's dtype: in float32 the rounding
    # of the finite differences would swamp any error in the formulas.
    loss_function = estimator._loss_function(X, y, sample_weight, dtype=np.float64)
    training_function = estimator._loss_function(X, y, sample_weight, dtype=np.float64,
                                                 training_path=True)
    coefs = [W.astype(np.float64) for W in estimator.coefs_]
    intercepts = [b.astype(np.float64) for b in estimator.intercepts_]
    # values that overflow are reported (an error at the centre, an error of
    # inf around it), not warned about
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        loss, *reference_grads = loss_function(coefs, intercepts)
        _check_finite_objective(loss, [*reference_grads[0], *reference_grads[1]])
        _, *training_grads = training_function(coefs, intercepts)  # what fit descends
        floor = _FLOOR * max(1.0, abs(loss))
        return max(
            _worst_error(loss_function, coefs, intercepts, *group, epsilon, floor)
            for group in zip((coefs, intercepts), reference_grads, training_grads)
        )


def _worst_error(loss_function, coefs, intercepts, params, reference, training, epsilon,
                 floor):
    """The largest error over the arrays ``params`` (the weights, or the
    biases) and both of their analytic gradients."""
    worst = 0.0
    for p, *analytic in zip(params, reference, training):
        numeric = np.empty_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + epsilon
            loss_plus = loss_function(coefs, intercepts)[0]
            p[index] = saved - epsilon
            loss_minus = loss_function(coefs, intercepts)[0]
            p[index] = saved
            numeric[index] = (loss_plus - loss_minus) / (2 * epsilon)
        for g in analytic:  # the reference gradient, then training's own
            error = np.abs(g - numeric) / np.maximum(np.abs(g) + np.abs(numeric), floor)
            # a NaN (from a loss that overflows near these weights) is no agreement
            worst = max(worst, float(np.nan_to_num(error, nan=np.inf, posinf=np.inf).max()))
    return worst
