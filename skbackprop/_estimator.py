"""BackpropMLPClassifier: the scikit-learn layer.

Everything scikit-learn specific lives here: parameter and data validation,
label encoding, fitted attributes and warnings. The modules below it see
only validated float arrays.
"""

import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._losses import LOG_OUTPUTS, OUTPUTS
from ._network import init_params, objective, predict_logits
from ._optimizers import adam, sgd
from ._training import train_minibatch


@contextmanager
def _restore_on_error(estimator):
    """Undo every attribute change to ``estimator`` if the block raises, so
    that a failed ``fit`` leaves the estimator as it found it."""
    saved = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


class BackpropMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier trained by hand-written backpropagation.

    A drop-in replacement for scikit-learn's
    :class:`~sklearn.neural_network.MLPClassifier`: parameters, fitted
    attributes and methods have the same names and meanings. The gradients
    are derived by hand and computed in NumPy, and they are public: see
    :meth:`loss_gradient` and :func:`skbackprop.check_gradients`.

    The network has one output unit per class and a softmax for three or more
    classes, and a single logistic unit for two. Training minimises the mean
    cross-entropy plus an L2 penalty on the weights::

        J = (1/S) sum_n l_n + alpha / (2 S) sum_i ||W_i||_F^2

    where ``S`` is the number of samples (of the minibatch, during a
    minibatch step) and ``l_n`` is sample ``n``'s cross-entropy.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        The ``i``-th element is the number of units in the ``i``-th hidden
        layer. An empty tuple gives a network with no hidden layer
        (multinomial logistic regression).
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of every hidden layer.
    solver : {"sgd", "adam"}, default="adam"
        ``"sgd"`` is minibatch gradient descent with optional (Nesterov)
        momentum; ``"adam"`` is Adam. The tutorial's plain full-batch gradient
        descent is ``solver="sgd", batch_size=n_samples, momentum=0``.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights (biases are not penalised).
    batch_size : int or "auto", default="auto"
        Minibatch size; ``"auto"`` means ``min(200, n_samples)``. A size above
        ``n_samples`` is clipped to ``n_samples``, with a warning.
    learning_rate_init : float, default=1e-3
        Step size of both solvers.
    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).
    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation and the shuffling. With the same
        integer, the same data and the same parameters, the initial weights
        and the sample order equal those of ``MLPClassifier``.
    tol : float, default=1e-4
        Training stops when the epoch loss has not improved by at least
        ``tol`` for more than ``n_iter_no_change`` consecutive epochs.
    verbose : bool, default=False
        Print the training loss after every epoch.
    warm_start : bool, default=False
        If True, ``fit`` starts from the current ``coefs_`` and
        ``intercepts_`` and appends to ``loss_curve_``, instead of
        initialising new weights. The classes and the layer sizes must not
        change.
    momentum : float, default=0.9
        Momentum of the ``"sgd"`` solver, in [0, 1].
    nesterovs_momentum : bool, default=True
        Whether ``"sgd"`` uses Nesterov's momentum.
    beta_1 : float, default=0.9
        Decay of the first-moment estimate of ``"adam"``, in [0, 1).
    beta_2 : float, default=0.999
        Decay of the second-moment estimate of ``"adam"``, in [0, 1).
    epsilon : float, default=1e-8
        Numerical-stability constant of ``"adam"``.
    n_iter_no_change : int, default=10
        Number of epochs without an improvement of ``tol`` that ends training.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    coefs_ : list of ndarray
        ``coefs_[i]`` is the weight matrix of layer ``i``, of shape
        ``(fan_in, fan_out)``.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` is the bias vector of layer ``i``, of shape
        ``(fan_out,)``.
    loss_ : float
        The training loss of the last epoch.
    best_loss_ : float
        The lowest epoch loss reached.
    loss_curve_ : list of float
        The training loss of every epoch (continued by ``warm_start``).
    n_iter_ : int
        The number of epochs the last call to ``fit`` ran.
    t_ : int
        The number of training samples seen by the solver, over all calls.
    n_features_in_ : int
        The number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The feature names seen during ``fit``, when ``X`` had string column
        names.
    n_layers_ : int
        The number of layers, input and output included.
    n_outputs_ : int
        The number of output units: ``n_classes``, or 1 for two classes.
    out_activation_ : str
        ``"softmax"``, or ``"logistic"`` for two classes.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : scikit-learn's own perceptron.
    skbackprop.check_gradients : Compare the gradients with finite differences.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skbackprop import BackpropMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     BackpropMLPClassifier(hidden_layer_sizes=(20,), learning_rate_init=0.01,
    ...                           max_iter=500, random_state=0),
    ... ).fit(X, y)
    >>> clf.predict(X[[0, 60, 120]])
    array([0, 1, 2])
    >>> round(clf.score(X, y), 2)
    0.99
    >>> clf[-1].n_iter_  # epochs until the loss stopped improving
    210
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on ``X`` and ``y`` by minibatch backpropagation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, of any type ``numpy.unique`` can sort; at least two
            classes.

        Returns
        -------
        self : BackpropMLPClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            If the data or the labels are invalid, if ``warm_start`` is asked
            to continue with other classes or layer sizes, or if the training
            loss becomes non-finite (the learning rate is too large). The
            estimator is then left exactly as it was before the call.
        """
        with _restore_on_error(self):
            warm = self.warm_start and hasattr(self, "coefs_")
            X, y = validate_data(self, X, y, reset=not warm, dtype=np.float64)
            classes = self._check_classes(y, warm)
            layer_sizes = self._layer_sizes(X.shape[1], len(classes))
            Y = _one_hot(y, classes)
            rng = check_random_state(self.random_state)
            coefs, intercepts = self._starting_weights(layer_sizes, warm, rng)
            result = self._train(coefs, intercepts, X, Y, rng, warm)
            self._set_fitted_state(classes, coefs, intercepts, result, len(X), warm)
        if not result.converged:
            warnings.warn(
                f"Maximum iterations ({self.max_iter}) reached and the optimization "
                "hasn't converged yet. Increase max_iter, or the learning rate.",
                ConvergenceWarning,
            )
        return self

    def _check_classes(self, y, warm):
        """The sorted classes of ``y``, checked for fit (and for warm start)."""
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"y contains only one class ({classes[0]!r}); a classifier needs "
                "samples of at least two classes."
            )
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                "warm_start=True can only continue training on the classes of the "
                f"previous fit, {self.classes_.tolist()}; y has {classes.tolist()}."
            )
        return classes

    def _layer_sizes(self, n_features, n_classes):
        """``[n_features, *hidden_layer_sizes, n_outputs]``, with each hidden size checked."""
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, Integral) else list(hidden)
        for size in hidden:
            if not isinstance(size, Integral) or isinstance(size, bool) or size < 1:
                raise ValueError(
                    "hidden_layer_sizes must hold positive integers; got "
                    f"{self.hidden_layer_sizes!r}."
                )
        n_outputs = 1 if n_classes == 2 else n_classes
        return [n_features, *(int(size) for size in hidden), n_outputs]

    def _starting_weights(self, layer_sizes, warm, rng):
        """Fresh Glorot weights, or copies of the current ones under warm start."""
        if not warm:
            return init_params(layer_sizes, self.activation, rng)
        shapes = [W.shape for W in self.coefs_]
        if shapes != list(zip(layer_sizes[:-1], layer_sizes[1:])):
            raise ValueError(
                f"warm_start=True needs the layer shapes of the previous fit, {shapes}; "
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} gives others."
            )
        return [W.copy() for W in self.coefs_], [b.copy() for b in self.intercepts_]

    def _optimizer(self):
        if self.solver == "sgd":
            return sgd(self.learning_rate_init, self.momentum, self.nesterovs_momentum)
        return adam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_samples} training "
                f"samples; using batch_size={n_samples}.",
                UserWarning,
            )
        return min(self.batch_size, n_samples)

    def _train(self, coefs, intercepts, X, Y, rng, warm):
        """Run the solver; ``coefs`` and ``intercepts`` are updated in place."""
        n_layers = len(coefs)
        output = _output_activation(Y.shape[1])

        def batch_objective(params, X_batch, Y_batch):
            loss, dcoefs, dintercepts = objective(
                X_batch, Y_batch, params[:n_layers], params[n_layers:],
                self.activation, output, self.alpha,
            )
            return loss, dcoefs + dintercepts

        # Overflow only happens in a diverging run, which is detected from the
        # loss and reported below: numpy's own warnings would only be noise.
        with np.errstate(over="ignore", invalid="ignore"):
            result = train_minibatch(
                batch_objective,
                coefs + intercepts,
                X,
                Y,
                self._optimizer(),
                batch_size=self._batch_size(X.shape[0]),
                max_iter=self.max_iter,
                shuffle=self.shuffle,
                rng=rng,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                best_loss=self.best_loss_ if warm else np.inf,
                verbose=self.verbose,
            )
        if result.diverged:
            raise ValueError(
                f"Training diverged: the training loss became {result.loss_curve[-1]} "
                f"at epoch {len(result.loss_curve)}. learning_rate_init="
                f"{self.learning_rate_init} is probably too large; try a smaller one "
                "(and standardise the features)."
            )
        return result

    def _set_fitted_state(self, classes, coefs, intercepts, result, n_samples, warm):
        self.classes_ = classes
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        self.n_layers_ = len(coefs) + 1
        self.n_outputs_ = coefs[-1].shape[1]
        self.out_activation_ = _output_activation(self.n_outputs_)
        self.loss_curve_ = (self.loss_curve_ if warm else []) + result.loss_curve
        self.loss_ = self.loss_curve_[-1]
        self.best_loss_ = result.best_loss
        self.n_iter_ = len(result.loss_curve)
        self.t_ = (self.t_ if warm else 0) + n_samples * self.n_iter_

    # -------------------------------------------------------------- predict

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return predict_logits(X, self.coefs_, self.intercepts_, self.activation)

    def predict_proba(self, X):
        """Class probabilities of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``proba[n, k]`` is the probability of ``classes_[k]``; rows sum to 1.
        """
        Z = self._logits(X)
        P = OUTPUTS[self.out_activation_](Z)
        if self.out_activation_ == "logistic":  # one unit holds P(classes_[1])
            P = np.hstack([1 - P, P])
        _check_finite(P)
        return P

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, computed from the logits.

        Computed as ``log_softmax`` of the logits (or ``log sigmoid`` for two
        classes), so entries stay finite where ``predict_proba`` underflows
        to 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        Z = self._logits(X)
        if self.out_activation_ == "logistic":  # log(1 - sigmoid(z)) = log sigmoid(-z)
            Z = np.hstack([-Z, Z])
        log_P = LOG_OUTPUTS[self.out_activation_](Z)
        _check_finite(log_P)
        return log_P

    def predict(self, X):
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``, in their original type.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------ gradients

    def loss_gradient(self, X, y):
        """The training objective at the current weights, and its gradient.

        This is exactly what ``fit`` descends, evaluated on all of ``X``::

            J = (1/S) sum_n l_n + alpha / (2 S) sum_i ||coefs_[i]||_F^2

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.
        y : array-like of shape (n_samples,)
            Their labels, taken from ``classes_``.

        Returns
        -------
        loss : float
            ``J``.
        coef_grads : list of ndarray
            ``dJ/dcoefs_[i]``, shaped like ``coefs_``.
        intercept_grads : list of ndarray
            ``dJ/dintercepts_[i]``, shaped like ``intercepts_``.

        Examples
        --------
        >>> import numpy as np
        >>> from skbackprop import BackpropMLPClassifier
        >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
        >>> y = np.array(["no", "yes", "yes", "no"])
        >>> clf = BackpropMLPClassifier(hidden_layer_sizes=(4,), activation="tanh",
        ...                             solver="sgd", learning_rate_init=0.5,
        ...                             max_iter=1000, random_state=0).fit(X, y)
        >>> clf.predict(X)
        array(['no', 'yes', 'yes', 'no'], dtype='<U3')
        >>> loss, coef_grads, intercept_grads = clf.loss_gradient(X, y)
        >>> [g.shape for g in coef_grads]
        [(2, 4), (4, 1)]
        >>> bool(loss < 0.01)
        True
        """
        return self._loss_function(X, y)(self.coefs_, self.intercepts_)

    def _loss_function(self, X, y):
        """``f(coefs, intercepts) -> (loss, coef_grads, intercept_grads)`` on
        the validated ``X`` and ``y``: the objective at any weights."""
        check_is_fitted(self)
        X, y = validate_data(self, X, y, reset=False, dtype=np.float64)
        Y = _one_hot(y, self.classes_)

        def loss_function(coefs, intercepts):
            return objective(
                X, Y, coefs, intercepts, self.activation, self.out_activation_, self.alpha
            )

        return loss_function


def _output_activation(n_outputs):
    return "logistic" if n_outputs == 1 else "softmax"


def _one_hot(y, classes):
    """0/1 targets: one column per class, or the single column of
    ``classes[1]`` for two classes (the logistic unit's target)."""
    hits = y[:, None] == classes[None, :]
    unknown = ~hits.any(axis=1)
    if unknown.any():
        raise ValueError(
            f"y contains labels not seen during fit: {np.unique(y[unknown]).tolist()}; "
            f"the classes are {classes.tolist()}."
        )
    Y = hits.astype(np.float64)
    return Y[:, 1:] if len(classes) == 2 else Y


def _check_finite(values):
    if not np.isfinite(values).all():
        raise ValueError(
            "The network produced non-finite outputs for this input; its values "
            "are probably too large. Standardise the features."
        )
