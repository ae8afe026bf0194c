"""BackpropMLPClassifier: the scikit-learn layer.

Everything scikit-learn specific lives here: parameter and data validation,
label encoding, sample and class weights, the validation split, callbacks,
fitted attributes and warnings. The modules below it see only validated
float arrays.
"""

import functools
import warnings
from contextlib import contextmanager
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from scipy import sparse
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._fast import (
    FusedObjective,
    flat_views,
    flatten,
    thread_plan,
    training_threads,
)
from ._fast import predict_logits as fast_logits
from ._fast import softmax as fast_softmax
from ._losses import OUTPUTS
from ._network import init_params, loss_from_logits, objective
from ._optimizers import adam, copy_state, overflowed_sums, resume_adam, sgd
from ._training import (
    MinibatchConfig,
    SolverState,
    steps_in_turn,
    train_lbfgs,
    train_minibatch,
)

try:  # scikit-learn >= 1.9 has a callback API; older versions simply go without
    from sklearn.callback import CallbackSupportMixin, with_callbacks

    _CALLBACK_BASES = (CallbackSupportMixin,)
except ImportError:  # pragma: no cover - depends on the installed scikit-learn
    _CALLBACK_BASES = ()

    def with_callbacks(method):
        return method


def _undo_on_error(method):
    """Make ``method`` all or nothing: if it raises, every attribute of the
    estimator is put back as it was, so a failed fit leaves no trace."""

    @functools.wraps(method)
    def undoable(self, *args, **kwargs):
        saved = dict(self.__dict__)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    return undoable


class _CallbackHooks:
    """Reports each epoch (or L-BFGS iteration) to scikit-learn's callbacks as
    a leaf subtask of the fit task, and passes on their request to stop.

    Every subtask that begins ends: one cut short (Ctrl-C, ``max_fun``) ends
    as an empty task, without a ``fitted_estimator``, from :meth:`close`. So
    does one whose weights cannot predict ``X``: an epoch on the way to a
    divergence can leave finite weights whose outputs overflow, and a
    callback that scores its ``fitted_estimator`` (``ScoringMonitor``) would
    raise and end the fit, where the divergence guard would have stopped it,
    restored the best weights and warned."""

    def __init__(self, estimator, context, task_name, X, y, metadata, fitted_attributes):
        self.estimator, self.context, self.task_name = estimator, context, task_name
        self.data = dict(X=X, y=y, metadata=metadata)
        self.fitted_attributes = fitted_attributes
        self.subtask = None  # the subtask begun and not yet ended
        self._largest_input = None

    def begin(self, index):
        self.subtask = self.context.subcontext(task_name=self.task_name)
        self.subtask.call_on_fit_task_begin(estimator=self.estimator, **self.data)

    def end(self, index, params):
        subtask, self.subtask = self.subtask, None  # ended once, even if a callback raises
        return subtask.call_on_fit_task_end(
            estimator=self.estimator,
            reconstruction_attributes=lambda: self._snapshot(params),
            **self.data,
        )

    def close(self):
        """End the subtask still open, if any (its epoch or iteration never
        completed), as an empty task."""
        if self.subtask is not None:
            subtask, self.subtask = self.subtask, None
            subtask.call_on_fit_task_end(estimator=self.estimator)

    def _snapshot(self, params):
        """The fitted attributes of the weights ``params``; None (no
        ``fitted_estimator``) if their outputs on ``X`` are not all finite."""
        attributes = self.fitted_attributes(params)
        if self._largest_input is None:
            X = self.data["X"]
            values = X.data if sparse.issparse(X) else X  # (no copy of X for |X|:)
            self._largest_input = max(abs(float(values.max(initial=0))),
                                      abs(float(values.min(initial=0))))
        if not _finite_outputs(self.data["X"], attributes["coefs_"],
                               attributes["intercepts_"], self.estimator.activation,
                               self._largest_input):
            return None
        return attributes


def _finite_outputs(X, coefs, intercepts, activation, largest_input):
    """Whether the network's logits on ``X`` are all finite (then so are its
    probabilities): a bound from the largest magnitudes of the inputs and of
    each layer's weights settles most cases at once; near overflow, the
    forward pass decides."""
    arrays = [*coefs, *intercepts]
    if not all(np.isfinite(a).all() for a in arrays):
        return False
    limit = float(np.finfo(coefs[0].dtype).max) / 16  # a margin for rounding
    bound = largest_input  # of |values| entering each layer; Python floats: inf, no warning
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        bound = (W.shape[0] * bound * float(np.abs(W).max(initial=0))
                 + float(np.abs(b).max(initial=0)))  # of |X W + b|
        if not bound < limit:
            break  # may overflow (even before a bounded activation, into inf - inf)
        if i < len(coefs) - 1 and activation in ("logistic", "tanh"):
            bound = min(bound, 1.0)  # |f(z)| <= |z| for "identity" and "relu"
    else:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(fast_logits(X, coefs, intercepts, activation)).all())


class BackpropMLPClassifier(*_CALLBACK_BASES, ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier trained by hand-written backpropagation.

    A drop-in replacement for scikit-learn's
    :class:`~sklearn.neural_network.MLPClassifier`: parameters, fitted
    attributes and methods have the same names and meanings. The gradients
    are derived by hand and computed in NumPy, and they are public: see
    :meth:`loss_gradient` and :func:`skbackprop.check_gradients`.

    The network has one output unit per class and a softmax for three or more
    classes, a single logistic unit for two, and one logistic unit per label
    for a multilabel indicator matrix. ``X`` may be dense or sparse, float64
    or float32 (which trains in float32 throughout). Training minimises the
    weighted mean cross-entropy plus an L2 penalty on the weights::

        J = (1/S) sum_n s_n l_n + alpha / (2 S) sum_i ||W_i||_F^2

    where ``l_n`` is sample ``n``'s cross-entropy, ``s_n`` its weight (1,
    unless ``sample_weight`` or ``class_weight`` say otherwise) and ``S`` the
    sum of the weights (of the minibatch, during a minibatch step).

    Training stops early when the loss stops improving, and a divergence
    guard stops it when the loss explodes: then the weights of the best epoch
    are restored and a :class:`~sklearn.exceptions.ConvergenceWarning` names
    the learning rate. A fit that raises leaves the estimator unchanged.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        The ``i``-th element is the number of units in the ``i``-th hidden
        layer. An empty tuple gives a network with no hidden layer
        (multinomial logistic regression).
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of every hidden layer.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        ``"sgd"`` is minibatch gradient descent with optional (Nesterov)
        momentum; ``"adam"`` is Adam; ``"lbfgs"`` is scipy's L-BFGS-B on the
        full-batch objective. The tutorial's plain full-batch gradient descent
        is ``solver="sgd", batch_size=n_samples, momentum=0``.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights (biases are not penalised).
    batch_size : int or "auto", default="auto"
        Minibatch size of ``"sgd"`` and ``"adam"``; ``"auto"`` means
        ``min(200, n_samples)``. A size above ``n_samples`` is clipped to
        ``n_samples``, with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the ``"sgd"`` step size. ``"invscaling"`` sets it to
        ``learning_rate_init / (t + 1) ** power_t`` after each epoch, ``t``
        being the number of samples seen (by weight). ``"adaptive"`` keeps it
        until the stopping rule fires, then divides it by 5 and goes on; only
        once it is at most 1e-6 does the stopping rule end training.
    learning_rate_init : float, default=1e-3
        Initial step size of ``"sgd"`` and ``"adam"``.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule.
    max_iter : int, default=200
        Maximum number of epochs (passes over the training data) of
        ``"sgd"`` and ``"adam"``, or of iterations of ``"lbfgs"``.
    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation and the shuffling. With the same
        integer, the same data and the same parameters, the initial weights
        and the sample order equal those of ``MLPClassifier``.
    tol : float, default=1e-4
        Training stops when the epoch loss (or, with ``early_stopping``, the
        validation score) has not improved on its best by at least ``tol`` for
        more than ``n_iter_no_change`` consecutive epochs. For ``"lbfgs"``, the
        tolerance on the projected gradient.
    verbose : bool, default=False
        Print the training loss (and validation score) after every epoch.
    warm_start : bool, default=False
        If True, ``fit`` starts from the current ``coefs_`` and
        ``intercepts_`` and appends to ``loss_curve_``, instead of
        initialising new weights (the optimizer starts afresh). The classes
        and the layer sizes must not change.
    momentum : float, default=0.9
        Momentum of the ``"sgd"`` solver, in [0, 1].
    nesterovs_momentum : bool, default=True
        Whether ``"sgd"`` uses Nesterov's momentum.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (a split
        stratified by class, drawn from ``random_state``), stop when the
        accuracy on it stops improving, and restore the weights of the epoch
        that scored best. ``"sgd"`` and ``"adam"`` only.
    validation_fraction : float, default=0.1
        Fraction of the training data held out by ``early_stopping``.
    beta_1 : float, default=0.9
        Decay of the first-moment estimate of ``"adam"``, in [0, 1).
    beta_2 : float, default=0.999
        Decay of the second-moment estimate of ``"adam"``, in [0, 1).
    epsilon : float, default=1e-8
        Numerical-stability constant of ``"adam"``, added (divided by
        ``sqrt(1 - beta_2)``) in the dtype of the weights: one that is 0
        there (below about 1e-45 in float32), or inf once divided (with the
        default ``beta_2``, above about 1.08e37 in float32), is refused.
    n_iter_no_change : int, default=10
        Number of epochs without an improvement of ``tol`` that ends training.
    max_fun : int, default=15000
        Maximum number of evaluations of the objective by ``"lbfgs"``.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplying the sample weights: a dict
        ``{label: weight}`` whose labels are classes (classes it does not
        name weigh 1), or ``"balanced"`` for
        ``n_samples / (n_classes * np.bincount(y))`` as in
        :func:`~sklearn.utils.class_weight.compute_class_weight`, from the
        labels given (in :meth:`loss_gradient`, ``n_classes`` counts the
        classes present among them). For a multilabel ``y``, None or
        ``"balanced"``, which weighs the 0s and 1s of each label column.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted (``0 .. n_labels - 1`` for multilabel
        targets).
    coefs_ : list of ndarray
        ``coefs_[i]`` is the weight matrix of layer ``i``, of shape
        ``(fan_in, fan_out)``.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` is the bias vector of layer ``i``, of shape
        ``(fan_out,)``.
    loss_ : float
        The training loss of the last epoch; for ``"lbfgs"``, and after the
        divergence guard restored earlier weights, the objective at the
        returned weights.
    best_loss_ : float or None
        The lowest training loss reached; None with ``early_stopping``.
    loss_curve_ : list of float
        The training loss of every epoch (or ``"lbfgs"`` iteration), continued
        by ``warm_start`` and ``partial_fit``.
    validation_scores_ : list of float or None
        With ``early_stopping``, the accuracy on the held-out data after each
        epoch; None otherwise.
    validation_loss_curve_ : list of float or None
        With ``early_stopping``, the objective on the held-out data after
        each epoch; None otherwise.
    best_validation_score_ : float or None
        With ``early_stopping``, the best of ``validation_scores_``; None
        otherwise.
    n_iter_ : int
        The number of epochs (or ``"lbfgs"`` iterations) the last call ran.
    diverged_ : bool
        Whether the divergence guard ended the last call: its training loss
        exploded (or was not finite), and the weights of its best epoch, or
        its starting weights, were restored. A ``ConvergenceWarning`` says
        so too; this attribute lets a script or a search check it.
    t_ : int or float
        The number of training samples seen by the solver, over all calls,
        each counted by its weight: its sample weight times its class weight
        (a float when there are such weights).
    n_features_in_ : int
        The number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        The feature names seen during ``fit``, when ``X`` had string column
        names.
    n_layers_ : int
        The number of layers, input and output included.
    n_outputs_ : int
        The number of output units: ``n_classes``, 1 for two classes, or
        ``n_labels`` for multilabel targets.
    out_activation_ : str
        ``"softmax"``, or ``"logistic"`` for two classes and for multilabel
        targets.

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

    #: The loss minimised, under the name of ``MLPClassifier``'s attribute
    #: (which it sets in its constructor; it is no parameter of either).
    loss = "log_loss"

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        class_weight=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.class_weight = class_weight

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    @_undo_on_error
    @with_callbacks
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : {array-like, sparse matrix} of shape (n_samples,) or (n_samples, n_labels)
            Class labels, of any one type that sorts (at least two classes),
            or a 0/1 multilabel indicator matrix, dense or sparse (then
            :meth:`predict` answers with a sparse matrix too).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights ``s_n`` of the samples in the objective
            (``S`` becomes their sum). Integer weights act like repeated rows,
            zero weights like removed rows. Multiplied by ``class_weight``.

        Returns
        -------
        self : BackpropMLPClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            If the data, the labels or the weights are invalid (weights
            must have a positive sum ``S``, with ``S`` and ``1/S`` finite
            in the data's dtype, and no positive weight below the dtype's
            smallest normal number), or if ``warm_start`` is asked to continue
            with other classes, another kind of target or other layer
            sizes. The estimator is then left exactly as it was.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from skbackprop import BackpropMLPClassifier
        >>> from sklearn.preprocessing import StandardScaler
        >>> X, y = load_iris(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)
        >>> clf = BackpropMLPClassifier(hidden_layer_sizes=(10,), solver="lbfgs",
        ...                             alpha=1.0, random_state=0).fit(X, y)
        >>> clf.n_iter_ < 200, len(clf.loss_curve_) == clf.n_iter_
        (True, True)
        """
        warm = self.warm_start and hasattr(self, "coefs_")
        sparse_labels = sparse.issparse(y)
        X, y, sample_weight = self._validate_training_data(X, y, sample_weight, reset=not warm)
        classes = self._check_classes(y, warm)
        self._train(X, y, sample_weight, classes, warm=warm, incremental=False)
        if not warm:  # predict answers multilabel y given sparse with a sparse matrix
            self._sparse_labels = sparse_labels
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    def _partial_fit_available(self):
        if self.solver == "lbfgs":
            raise AttributeError(
                "partial_fit is only available for the stochastic solvers 'sgd' and "
                f"'adam'; solver={self.solver!r}."
            )
        return True

    @available_if(_partial_fit_available)
    @_fit_context(prefer_skip_nested_validation=True)
    @_undo_on_error
    @with_callbacks
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch over ``X`` and ``y``, continuing from the current weights.

        The optimizer's state (velocities or Adam moments, and the learning
        rate of a schedule) carries over from one call to the next; a stream
        keeps the ``learning_rate_init`` it started with, as
        ``MLPClassifier``'s does. Not available with ``solver='lbfgs'``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, all of them in ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class that any call will see. Required on the first call
            (``y`` of one chunk may lack some classes), optional afterwards,
            where it must hold the same labels; ``classes_`` keeps those of
            the first call. For a multilabel ``y``, ``np.arange(n_labels)``.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples, as in :meth:`fit`.

        Returns
        -------
        self : BackpropMLPClassifier
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_iris
        >>> from skbackprop import BackpropMLPClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = BackpropMLPClassifier(hidden_layer_sizes=(10,), random_state=0)
        >>> for chunk in np.array_split(np.arange(150), 3):  # one epoch per call
        ...     clf = clf.partial_fit(X[chunk], y[chunk], classes=[0, 1, 2])
        >>> clf.n_iter_, len(clf.loss_curve_), clf.t_
        (1, 3, 150)
        """
        first = not hasattr(self, "coefs_")
        if not first:  # scikit-learn validates parameters only on the first call
            self._validate_params()
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True.")
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' needs the class frequencies of all the data, "
                "which partial_fit never sees at once. Pass a dict instead, e.g. from "
                "sklearn.utils.class_weight.compute_class_weight on the full labels."
            )
        classes = self._partial_fit_classes(classes, first)
        sparse_labels = sparse.issparse(y)
        X, y, sample_weight = self._validate_training_data(X, y, sample_weight, reset=first)
        if _is_multilabel(y):
            if not np.array_equal(classes, np.arange(y.shape[1])):
                raise ValueError(
                    f"y has {y.shape[1]} label columns, but classes is {classes.tolist()}; "
                    "for multilabel targets, classes must be np.arange(n_labels)."
                )
            classes = self.classes_ if not first else np.arange(y.shape[1])  # as fit's
        if not first:
            self._check_kind_of_targets(y)
        if len(classes) < 2 and not _is_multilabel(y):
            raise ValueError(
                f"classes has only one class ({classes.tolist()}); a classifier needs at "
                "least two (a single 0 names the one column of a multilabel y)."
            )
        self._train(X, y, sample_weight, classes, warm=not first, incremental=True)
        if first:  # as in fit (and MLPClassifier): a sparse multilabel y, a sparse predict
            self._sparse_labels = sparse_labels
        return self

    def _partial_fit_classes(self, classes, first):
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is None:
            return self.classes_
        with _labels_as_value_errors("classes"):
            classes = unique_labels(np.asarray(classes))
        if first:
            if len(classes) < 2 and not _is_multilabel_classes(classes):
                raise ValueError(
                    f"classes has only one class ({classes.tolist()}); a classifier needs "
                    "at least two."
                )
            return classes
        if not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"classes={classes.tolist()} differs from the classes of the first call "
                f"to partial_fit, {self.classes_.tolist()}."
            )
        return self.classes_  # equal values; keep the labels' type, as predict returns them

    def _validate_training_data(self, X, y, sample_weight, reset):
        """``X`` (float64 or float32; for a fitted model whose training goes
        on, ``reset=False``, the dtype of its weights), ``y`` (dense) and
        ``sample_weight``, checked."""
        # a float32 chunk must not turn a float64 model into float32; converted
        # first, so that the check for finite values sees the converted X (a
        # value that overflows then raises that check's ValueError, no warning)
        dtype = (np.float64, np.float32) if reset else self.coefs_[0].dtype
        with np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(
                self, X, y, reset=reset, accept_sparse=["csr", "csc"], dtype=dtype,
                multi_output=True,
            )
        if sparse.issparse(y):  # a sparse multilabel indicator matrix: a few bytes a row
            y = y.toarray()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        with _labels_as_value_errors("y"):
            check_classification_targets(y)
        if y.ndim == 2 and not _is_multilabel(y):
            raise ValueError(
                f"2-D y must be a multilabel indicator matrix of 0/1 values; got targets "
                f"of type {type_of_target(y)!r}, which BackpropMLPClassifier does not support."
            )
        if sample_weight is not None:
            # checked in float64, then in X's dtype; their sum is checked with
            # the class weights, by _combined_weights
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            sample_weight = _in_dtype(sample_weight, X.dtype, "sample_weight")
        return X, y, sample_weight

    def _check_classes(self, y, warm):
        """The sorted classes of ``y`` (the label columns ``0 .. L-1`` for a
        multilabel indicator matrix), checked for fit and for warm start."""
        # unique_labels sorts the labels as MLPClassifier does (strings of an
        # object array become a str array)
        classes = np.arange(y.shape[1]) if _is_multilabel(y) else unique_labels(y)
        if len(classes) < 2 and not _is_multilabel(y):
            raise ValueError(
                f"y contains only one class ({classes.tolist()[0]!r}); a classifier needs "
                "samples of at least two classes."
            )
        if warm:
            self._check_kind_of_targets(y)
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                "warm_start=True can only continue training on the classes of the "
                f"previous fit, {self.classes_.tolist()}; y has {classes.tolist()}."
            )
        return classes

    def _check_kind_of_targets(self, y):
        """Continuing training, or evaluating the objective, needs ``y`` of the
        kind the model was fitted on: single labels, or a multilabel matrix."""
        fitted_multilabel = (self.out_activation_ == "logistic"
                             and self.n_outputs_ == len(self.classes_))
        if _is_multilabel(y) != fitted_multilabel:
            given, fitted = ("a multilabel indicator matrix", "single labels")
            if fitted_multilabel:
                given, fitted = fitted, given
            raise ValueError(
                f"y is {given}, but the model was fitted on {fitted}; fit a new model "
                "(warm_start=False) to change the kind of targets."
            )

    def _train(self, X, y, sample_weight, classes, *, warm, incremental):
        """The common recipe of ``fit`` and ``partial_fit``."""
        self._check_epsilon(X.dtype)
        if sparse.issparse(X) and X.format != "csr":
            X = X.tocsr()  # minibatches take rows: one copy of X, in CSR form
        output = _output_activation(y, classes)
        Y = _targets(y, classes, X.dtype)
        layer_sizes = self._layer_sizes(X.shape[1], Y.shape[1])
        weights = self._combined_weights(y, classes, sample_weight, X.dtype)
        rng = check_random_state(self.random_state)
        # Training works on one flat vector of all weights and biases, a copy
        # of the starting weights; coefs_ and intercepts_ become views of it.
        theta = flatten(*self._starting_weights(layer_sizes, warm, rng, X.dtype), X.dtype)
        net = _Net(layer_sizes, output)
        context = self._begin_callbacks(X, y, sample_weight, incremental)
        hooks = self._callback_hooks(context, X, y, sample_weight, classes, net)
        if self.solver == "lbfgs":
            result = self._run_lbfgs(theta, X, Y, weights, net, hooks)
        else:
            result = self._run_stochastic(
                theta, X, y, Y, weights, net, rng, hooks, warm, incremental
            )
        if hooks is not None:  # an epoch cut short (Ctrl-C) ends, empty, before the fit
            hooks.close()
        coefs, intercepts = flat_views(theta, layer_sizes)
        self._set_fitted_state(classes, coefs, intercepts, output, result, X, Y, weights, warm)
        if context is not None:
            context.call_on_fit_task_end(
                estimator=self, X=X, y=y, metadata=_metadata(sample_weight),
                reconstruction_attributes={},
            )
        self._warn_about(result, incremental)

    def _check_epsilon(self, dtype):
        """Adam adds ``epsilon / sqrt(1 - beta_2)`` to the root of its sum of
        squares, in the weights' dtype, where a tiny ``epsilon`` (below 1e-45
        in float32) rounds to 0, and one above 3.4e38 is inf; so is the sum
        above 3.4e38 (with the default ``beta_2``, an ``epsilon`` above
        1.08e37)."""
        if self.solver != "adam":
            return
        with np.errstate(over="ignore"):  # an epsilon beyond float32's range is inf there
            in_dtype = dtype.type(self.epsilon)
            added = self.epsilon / np.sqrt(1 - self.beta_2)  # in float64 (maybe inf)
            added_in_dtype = dtype.type(added)
        or_float64 = ", or fit a new model on float64 X" if dtype != np.float64 else ""
        if not 0 < in_dtype:
            raise ValueError(
                f"epsilon={self.epsilon} is 0 in {dtype}, the dtype of the model's weights, "
                "where Adam adds it: it would divide by zero. Use a larger epsilon (the "
                f"default is 1e-8){or_float64}."
            )
        if not added_in_dtype < np.inf:
            raise ValueError(
                f"epsilon={self.epsilon} is too large for {dtype}, the dtype of the model's "
                f"weights: Adam adds epsilon / sqrt(1 - beta_2) ({added:g} with "
                f"beta_2={self.beta_2}), which is inf there: it would never move a weight. "
                f"Use a smaller epsilon (the default is 1e-8) or beta_2{or_float64}."
            )

    def _layer_sizes(self, n_features, n_outputs):
        """``[n_features, *hidden_layer_sizes, n_outputs]``, with each hidden size checked."""
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, Integral) else list(hidden)
        for size in hidden:
            if not isinstance(size, Integral) or isinstance(size, bool) or size < 1:
                raise ValueError(
                    "hidden_layer_sizes must hold positive integers; got "
                    f"{self.hidden_layer_sizes!r}."
                )
        return [n_features, *(int(size) for size in hidden), n_outputs]

    def _combined_weights(self, y, classes, sample_weight, dtype):
        """``sample_weight`` times the weights of ``class_weight``; None if both
        are. Their sum ``S`` must be positive, ``S`` and ``1/S`` finite, and
        each positive weight a normal number (see ``_check_total_weight``)."""
        if self.class_weight is None:
            weights = sample_weight
        else:
            weights = np.asarray(self._class_weights(y, classes), dtype=np.float64)
            if not (np.isfinite(weights).all() and (weights >= 0).all()):
                raise ValueError(
                    "class_weight must give finite, non-negative weights; got "
                    f"{self.class_weight!r}."
                )
            weights = _in_dtype(weights, dtype, "class_weight")
            if sample_weight is not None:
                with np.errstate(over="ignore"):  # an infinite product: refused below
                    weights = weights * sample_weight
        if weights is not None:
            _check_total_weight(weights)
        return weights

    def _class_weights(self, y, classes):
        """Each sample's weight from ``class_weight``. A dict is looked up over
        all of ``classes``, so that a ``partial_fit`` chunk may lack some;
        'balanced' weighs the classes present in ``y`` (all of them in ``fit``;
        ``loss_gradient`` may be given rows that lack some)."""
        if _is_multilabel(y):
            if isinstance(self.class_weight, dict):
                raise ValueError(
                    "class_weight as a dict of class weights needs single-label y; for a "
                    "multilabel indicator matrix, use class_weight=None or 'balanced' (which "
                    "weighs the 0s and 1s of each label column)."
                )
            return compute_sample_weight(self.class_weight, y)
        index = np.searchsorted(classes, y)
        if isinstance(self.class_weight, dict):
            known = set(classes)
            unknown = [label for label in self.class_weight if label not in known]
            if unknown:
                raise ValueError(
                    f"class_weight has labels that are not classes: {unknown}; the classes "
                    f"are {classes.tolist()}."
                )
            per_class = np.array([self.class_weight.get(c, 1.0) for c in classes], dtype=float)
        else:  # "balanced": n_samples / (n_classes * count), over the classes in y
            counts = np.bincount(index, minlength=len(classes))
            present = counts > 0
            per_class = np.zeros(len(classes))
            per_class[present] = len(y) / (np.count_nonzero(present) * counts[present])
        return per_class[index]

    def _starting_weights(self, layer_sizes, warm, rng, dtype):
        """Fresh Glorot weights (of the data's dtype), or the current ones to
        continue from."""
        if not warm:
            return init_params(layer_sizes, self.activation, rng, dtype)
        shapes = [W.shape for W in self.coefs_]
        if shapes != list(zip(layer_sizes[:-1], layer_sizes[1:])):
            raise ValueError(
                f"Training can only continue with the layer shapes of the previous fit, "
                f"{shapes}; hidden_layer_sizes={self.hidden_layer_sizes!r} gives others."
            )
        return self.coefs_, self.intercepts_

    # ------------------------------------------------------------ callbacks

    def _begin_callbacks(self, X, y, sample_weight, incremental):
        """Open the fit task for scikit-learn's callbacks (scikit-learn >= 1.9)."""
        if not _CALLBACK_BASES:
            return None
        max_subtasks = 1 if incremental else self.max_iter
        task_name = "partial_fit" if incremental else "fit"
        context = self._init_callback_context(task_name=task_name, max_subtasks=max_subtasks)
        context.call_on_fit_task_begin(estimator=self, X=X, y=y, metadata=_metadata(sample_weight))
        return context

    def _callback_hooks(self, context, X, y, sample_weight, classes, net):
        if context is None or not getattr(self, "_skl_callbacks", None):
            return None

        def fitted_attributes(params):
            coefs, intercepts = flat_views(params[0].copy(), net.layer_sizes)
            return {
                "classes_": classes,
                "coefs_": coefs,
                "intercepts_": intercepts,
                "n_layers_": len(net.layer_sizes),
                "n_outputs_": net.layer_sizes[-1],
                "out_activation_": net.output,
            }

        task_name = "iteration" if self.solver == "lbfgs" else "epoch"
        return _CallbackHooks(
            self, context, task_name, X, y, _metadata(sample_weight), fitted_attributes
        )

    # -------------------------------------------------------------- solvers

    def _objective(self, X, net, plan, workers):
        """``objective([theta], X, Y, sample_weight) -> (loss, [gradient])``
        over the flat vector: the fused, in-place objective of ``_fast``."""
        return FusedObjective(net.layer_sizes, self.activation, net.output, self.alpha,
                              X.dtype, n_shards=plan.n_shards, workers=workers)

    def _run_lbfgs(self, theta, X, Y, weights, net, hooks):
        plan = thread_plan(net.layer_sizes, X.shape[0], shardable=not sparse.issparse(X))
        # A run that overflows is detected from its loss and reported as a warning.
        with np.errstate(over="ignore", invalid="ignore"), training_threads(plan) as workers:
            return train_lbfgs(
                self._objective(X, net, plan, workers), [theta], X, Y, weights,
                max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol, hooks=hooks,
                verbose=self.verbose,
            )

    def _run_stochastic(self, theta, X, y, Y, weights, net, rng, hooks, warm, incremental):
        rows = validate = None
        if self.early_stopping:
            rows, validate = self._validation_split(X, y, Y, weights, rng, net)
        config = MinibatchConfig(
            batch_size=self._batch_size(X.shape[0] if rows is None else len(rows)),
            max_iter=1 if incremental else self.max_iter,
            shuffle=self.shuffle,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            schedule=self.learning_rate if self.solver == "sgd" else "constant",
            power_t=self.power_t,
            guard_carries_over=incremental,
        )
        state = self._solver_state(self._optimizer(), [theta], warm, incremental)
        plan = thread_plan(net.layer_sizes, config.batch_size, shardable=not sparse.issparse(X))
        # Overflow only happens in a diverging run, which the divergence guard
        # detects from the loss and reports: numpy's own warnings would be noise.
        with np.errstate(over="ignore", invalid="ignore"), training_threads(plan) as workers:
            # two shards: their threads take the steps of an epoch together
            steps = FusedObjective.steps_in_lockstep if plan.n_shards > 1 else steps_in_turn
            return train_minibatch(
                self._objective(X, net, plan, workers), [theta], X, Y, weights,
                self._optimizer(), config, state, rng, rows=rows, validate=validate,
                hooks=hooks, verbose=self.verbose, steps=steps,
            )

    def _optimizer(self):
        if self.solver == "sgd":
            return sgd(self.momentum, self.nesterovs_momentum)
        return adam(self.beta_1, self.beta_2, self.epsilon)

    def _solver_state(self, optimizer, params, warm, incremental):
        """Where minibatch training starts: ``partial_fit`` resumes the
        optimizer of the previous call; ``fit`` starts a fresh one, and with
        ``warm_start`` keeps counting epochs without improvement where the
        previous fit stopped, as ``MLPClassifier`` does."""
        previous_state = getattr(self, "_stochastic_state", None)
        if previous_state is not None and previous_state.learning_rate_init is None:
            # saved before a stream kept its starting rate: such streams went
            # on from the current learning_rate_init
            previous_state = previous_state._replace(learning_rate_init=self.learning_rate_init)
        fresh_optimizer_state = optimizer.init(params)
        watches_score = self.early_stopping and not incremental  # partial_fit never validates
        if previous_state is not None and (self.best_loss_ is None) != watches_score:
            # the previous call watched the validation score and this one the
            # training loss, or the other way round: its best and its count of
            # epochs without improvement mean nothing here
            previous_state = previous_state._replace(
                best=-np.inf if watches_score else np.inf, no_improvement=0
            )
        if incremental and previous_state is not None:
            # Adam goes on from the moments it saved, whatever betas (or, in a
            # model saved by 0.1.0, whatever form) they were saved with
            previous_state = previous_state._replace(optimizer_state=resume_adam(
                previous_state.optimizer_state, self.beta_1, self.beta_2))
            if _same_layout(previous_state.optimizer_state, fresh_optimizer_state):
                # a copy: training overwrites the state's arrays, and a call that
                # fails must leave the previous state as it was
                return previous_state._replace(
                    optimizer_state=copy_state(previous_state.optimizer_state)
                )
            # the solver (or the layout of the state) changed since the last call:
            # keep all but the optimizer's memory
            return previous_state._replace(optimizer_state=fresh_optimizer_state)
        if self.early_stopping:  # the best validation score so far
            previous = self.best_validation_score_ if warm else None
            best = -np.inf if previous is None else previous
        else:  # the best training loss so far
            previous = self.best_loss_ if warm else None
            best = np.inf if previous is None else previous
        samples_seen = self.t_ if warm else 0
        count = previous_state.no_improvement if warm and previous_state is not None else 0
        return SolverState(fresh_optimizer_state, self.learning_rate_init, count, best,
                           samples_seen, self.learning_rate_init)

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

    def _validation_split(self, X, y, Y, weights, rng, net):
        """Hold out ``validation_fraction`` of the rows, stratified by class.

        Returns the training rows and ``validate(params) -> (accuracy, loss)``
        on the held-out rows (both weighted by the sample weights; subset
        accuracy for multilabel targets). Only the held-out rows are copied.
        """
        multilabel = _is_multilabel(y)
        if not multilabel:
            self._check_validation_size(X.shape[0], len(np.unique(y)))
        # Unlike MLPClassifier, which stratifies only binary targets, every
        # single-label split is stratified; for binary targets the two draw
        # the same split.
        train_rows, validation_rows = train_test_split(
            np.arange(X.shape[0]), test_size=self.validation_fraction, random_state=rng,
            stratify=None if multilabel else y,
        )
        if multilabel and len(validation_rows) < 2:
            # MLPClassifier's minimum for every target: an accuracy on one
            # sample is 0 or 1, no score to stop on
            raise ValueError(
                f"early_stopping's validation part holds {len(validation_rows)} of "
                f"{X.shape[0]} samples; it needs at least 2. The validation set is too "
                "small: increase validation_fraction or the size of the data set, or set "
                "early_stopping=False."
            )
        if not multilabel:  # stratified, but rounding can still leave a rare class out
            missing = np.setdiff1d(np.unique(y), y[validation_rows])
            if missing.size:
                raise ValueError(
                    f"early_stopping's validation part ({len(validation_rows)} of "
                    f"{X.shape[0]} samples) holds no sample of the classes "
                    f"{missing.tolist()}: too few of them to split. Increase "
                    "validation_fraction, or set early_stopping=False."
                )
        X_val, Y_val = X[validation_rows], Y[validation_rows]
        w_val = None if weights is None else weights[validation_rows]
        for name, part in (("training", train_rows), ("validation", validation_rows)):
            if weights is not None and not weights[part].sum() > 0:
                raise ValueError(
                    f"early_stopping split off {len(validation_rows)} validation rows, and the "
                    f"{name} rows' weights sum to zero. Give weight to more samples, or set "
                    "early_stopping=False."
                )
        truth = Y_val if multilabel else _class_indices(Y_val)

        def validate(params):
            coefs, intercepts = flat_views(params[0], net.layer_sizes)
            Z = fast_logits(X_val, coefs, intercepts, self.activation)
            loss = loss_from_logits(Z, Y_val, coefs, net.output, self.alpha, w_val)
            P = _proba_from_logits(Z, net.output)  # after the loss: it may overwrite Z
            predicted = (P > 0.5).astype(Y_val.dtype) if multilabel else P.argmax(axis=1)
            overflowed = ~np.isfinite(P).all(axis=1)  # no prediction: counted as wrong
            if overflowed.any():
                predicted[overflowed] = 1 - truth[overflowed] if multilabel else -1
                loss = np.inf  # (not the NaN of inf - inf)
            return accuracy_score(truth, predicted, sample_weight=w_val), loss

        return train_rows, validate

    def _check_validation_size(self, n_samples, n_classes):
        n_validation = int(np.ceil(self.validation_fraction * n_samples))
        if n_validation < n_classes:
            raise ValueError(
                f"early_stopping needs a validation set with a sample of each of the "
                f"{n_classes} classes, but validation_fraction={self.validation_fraction} "
                f"of {n_samples} samples holds only {n_validation}. Increase "
                "validation_fraction, or set early_stopping=False."
            )

    # ------------------------------------------------------- fitted state

    def _set_fitted_state(self, classes, coefs, intercepts, output, result, X, Y, weights, warm):
        self.classes_ = classes
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        self.n_layers_ = len(coefs) + 1
        self.n_outputs_ = coefs[-1].shape[1]
        self.out_activation_ = output
        self.n_iter_ = len(result.loss_curve)
        self.diverged_ = bool(result.diverged)
        self.loss_curve_ = self._continued("loss_curve_", result.loss_curve, warm)
        if self.solver == "lbfgs":
            epoch_weight = X.shape[0] if weights is None else float(weights.sum())
            self.t_ = (self.t_ if warm else 0) + epoch_weight * self.n_iter_
            self.__dict__.pop("_stochastic_state", None)  # a later partial_fit starts afresh
        else:
            self.t_ = result.state.samples_seen
            self._stochastic_state = result.state
        if self.solver != "lbfgs" and self.early_stopping:
            self.validation_scores_ = self._continued(
                "validation_scores_", result.validation_scores, warm
            )
            self.validation_loss_curve_ = self._continued(
                "validation_loss_curve_", result.validation_losses, warm
            )
            self.best_validation_score_ = result.state.best
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.validation_loss_curve_ = None
            self.best_validation_score_ = None
            self.best_loss_ = result.state.best
        if self.solver == "lbfgs" or result.diverged or not self.loss_curve_:
            # the training objective of the weights returned
            with np.errstate(over="ignore", invalid="ignore"):
                Z = fast_logits(X, coefs, intercepts, self.activation)
                self.loss_ = loss_from_logits(Z, Y, coefs, output, self.alpha, weights)
        else:
            self.loss_ = self.loss_curve_[-1]

    def _continued(self, name, new_values, warm):
        """The curve ``name`` extended by ``new_values`` when training continues."""
        previous = getattr(self, name, None) if warm else None
        return (previous or []) + new_values

    def _warn_about(self, result, incremental):
        if result.interrupted:
            warnings.warn(
                f"Training was interrupted (KeyboardInterrupt) after {len(result.loss_curve)} "
                "complete epochs or iterations. The model keeps the weights of the best one "
                "so far and is ready to use; fit again, or call partial_fit, to go on.",
                UserWarning,
            )
        elif result.diverged and self.solver == "lbfgs":
            warnings.warn(
                "L-BFGS reached a non-finite loss; the starting weights were kept. "
                "Standardise the features, or increase alpha.",
                ConvergenceWarning,
            )
        elif result.diverged:
            # a partial_fit stream keeps the rate it started with
            lr = result.state.learning_rate_init if incremental else self.learning_rate_init
            if result.unimproved:
                restored = ("The starting weights were restored (no epoch before the "
                            "explosion had improved the loss).")
            elif result.restarted:
                restored = ("The starting weights were restored (they fit better than those "
                            "of the best epoch, in which the explosion had begun).")
            else:
                restored = "The weights of the best epoch were restored."
            if incremental:
                cause = (f"learning_rate_init={lr}, the rate this partial_fit stream started "
                         "with, is probably too large. A stream keeps that rate, as "
                         "MLPClassifier's does, even when set_params changes "
                         "learning_rate_init: start a new stream with a smaller one, such as "
                         f"{lr / 10:g}, with fit or with partial_fit on a clone.")
            else:
                cause = (f"learning_rate_init={lr} is probably too large; try a smaller one, "
                         f"such as {lr / 10:g}.")
            if result.high_from_start:  # only partial_fit compares with earlier calls
                cause = (
                    "The loss was past the guard's threshold (100 times the best loss of the "
                    "earlier calls, or 100 if that is below 1) on this call's first "
                    "minibatch already, before any step: the last step of the previous call "
                    "exploded, or these data differ from those the model learnt from. If "
                    "the data changed, fit a model on them (a warm_start fit's guard compares "
                    "only its own epochs, but its stopping rule keeps the earlier best loss, "
                    "as MLPClassifier's does); otherwise " + cause
                )
            warnings.warn(
                f"Training diverged in epoch {len(result.loss_curve)}: the training loss "
                f"reached {result.loss_curve[-1]:.3g}. {restored} {cause}",
                ConvergenceWarning,
            )
        elif not (result.converged or result.stopped or incremental):  # max_iter ran out
            if self.solver == "lbfgs":
                # the openings of MLPClassifier's messages, which warning filters match
                message = (
                    f"lbfgs failed to converge after {len(result.loss_curve)} iteration(s) "
                    f"(max_iter={self.max_iter}, max_fun={self.max_fun}). Increase them, "
                    "or scale the data."
                )
            else:
                message = (
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                    "the optimization hasn't converged yet. Increase max_iter, or the "
                    "learning rate."
                )
            warnings.warn(message, ConvergenceWarning)
        if not result.diverged:
            self._warn_about_overflowed_sums(result.state.optimizer_state)

    def _warn_about_overflowed_sums(self, optimizer_state):
        """Warn if Adam's sum of squared gradients overflowed for some
        parameters: their steps are 0 from then on, and no loss shows it."""
        stopped = overflowed_sums(optimizer_state)
        if not stopped:
            return
        dtype = self.coefs_[0].dtype
        limit = np.sqrt(float(np.finfo(dtype).max) * (1 - self.beta_2))
        n_params = sum(a.size for a in self.coefs_ + self.intercepts_)
        or_float64 = " (or on float64 X)" if dtype != np.float64 else ""
        warnings.warn(
            f"Adam's sum of squared gradients overflowed in {dtype} for {stopped} of the "
            f"model's {n_params} weights and biases: their steps are 0 from then on, so "
            f"they no longer learn, and partial_fit keeps these sums. Gradients that large "
            f"(beyond about {limit:.2g} with beta_2={self.beta_2}) come from features of a "
            "similar size, such as timestamps: standardise the features (StandardScaler) "
            f"and fit the model again{or_float64}.",
            ConvergenceWarning,
        )

    # -------------------------------------------------------------- predict

    def _logits(self, X):
        if not hasattr(self, "coefs_"):
            check_is_fitted(self, "coefs_")  # raises NotFittedError
        if not self._is_plain_valid_array(X):
            X = validate_data(
                self, X, reset=False, accept_sparse=["csr", "csc"],
                dtype=(np.float64, np.float32),
            )
        return fast_logits(X, self.coefs_, self.intercepts_, self.activation)

    def _is_plain_valid_array(self, X):
        """The fast lane of prediction: a finite 2-D float NumPy array of the
        right width, from a model fitted without feature names, passes every
        check ``validate_data`` would make, so those (costly for a single
        row) are skipped. Anything else takes the full validation, which also
        gives the errors and warnings."""
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype in (np.float64, np.float32)
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
            and bool(np.isfinite(X).all())
        )

    def predict_proba(self, X):
        """Class probabilities of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``proba[n, k]`` is the probability of ``classes_[k]``; rows sum to
            1. For multilabel targets, ``proba[n, k]`` is the probability that
            label ``k`` applies, independently of the others.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from skbackprop import BackpropMLPClassifier
        >>> from sklearn.preprocessing import scale
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = BackpropMLPClassifier((10,), solver="lbfgs", alpha=1.0,
        ...                             random_state=0).fit(scale(X), y)
        >>> proba = clf.predict_proba(scale(X)[[0, 100]])
        >>> proba.shape, proba.sum(axis=1).round(12).tolist()
        ((2, 3), [1.0, 1.0])
        """
        P = _proba_from_logits(self._logits(X), self.out_activation_)
        _check_finite(P)
        return P

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities.

        ``log(predict_proba(X))``: ``-inf`` where a probability underflows to
        0 (a logit margin beyond about 745), as in ``MLPClassifier``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_iris
        >>> from skbackprop import BackpropMLPClassifier
        >>> from sklearn.preprocessing import scale
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = BackpropMLPClassifier((10,), solver="lbfgs", alpha=1.0,
        ...                             random_state=0).fit(scale(X), y)
        >>> X = scale(X)
        >>> bool(np.allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X)))
        True
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        y_pred : {ndarray, sparse matrix} of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``; for multilabel targets, the 0/1
            indicator matrix of the labels whose probability exceeds 1/2
            (a sparse matrix if ``fit``, or the first call to
            ``partial_fit``, was given a sparse ``y``).

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from skbackprop import BackpropMLPClassifier
        >>> from sklearn.preprocessing import scale
        >>> X, y = load_iris(return_X_y=True)
        >>> X = scale(X)
        >>> names = load_iris().target_names[y]  # string labels stay strings
        >>> clf = BackpropMLPClassifier((10,), solver="lbfgs", alpha=1.0,
        ...                             random_state=0).fit(X, names)
        >>> clf.predict(X[[0, 60, 120]]).tolist()
        ['setosa', 'versicolor', 'virginica']
        """
        Z = self._logits(X)
        if self.out_activation_ == "logistic" and Z.shape[1] == 1:  # two classes
            # predict_proba's two columns, compared without joining them. Not
            # sigmoid(z) > 1/2: for tiny z > 0, sigmoid(z) rounds to 1/2 while
            # sigmoid(-z) rounds below it, and argmax(predict_proba) says 1.
            lower, upper = _two_class_probabilities(Z[:, 0])
            _check_finite(upper)
            return self.classes_[(upper > lower).astype(np.intp)]
        proba = _proba_from_logits(Z, self.out_activation_)
        _check_finite(proba)
        if self.out_activation_ == "logistic":  # multilabel
            indicator = (proba > 0.5).astype(int)
            return _sparse(indicator) if getattr(self, "_sparse_labels", False) else indicator
        return self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------ gradients

    def loss_gradient(self, X, y, sample_weight=None):
        """The training objective at the current weights, and its gradient.

        This is the objective ``fit`` descends, evaluated on all of ``X``::

            J = (1/S) sum_n s_n l_n + alpha / (2 S) sum_i ||coefs_[i]||_F^2

        with ``s_n`` the sample weight times the class weight of sample ``n``
        and ``S`` their sum (the number of samples, without weights). It is
        computed by the readable reference functions of
        ``skbackprop._network``; ``fit`` computes the same numbers, to
        rounding, with fused in-place code, and
        :func:`skbackprop.check_gradients` checks both.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.
        y : array-like of shape (n_samples,)
            Their labels, taken from ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights, as in :meth:`fit`.

        Returns
        -------
        loss : float
            ``J``.
        coef_grads : list of ndarray
            ``dJ/dcoefs_[i]``, shaped like ``coefs_``.
        intercept_grads : list of ndarray
            ``dJ/dintercepts_[i]``, shaped like ``intercepts_``.

        Raises
        ------
        ValueError
            If the objective or its gradient is not finite: the network's
            values overflow on ``X`` (unstandardised features, or weights
            that diverged), or the weights are not finite.

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
        loss_function = self._loss_function(X, y, sample_weight)
        # values that overflow are reported as one error, not as NumPy's warnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss, coef_grads, intercept_grads = loss_function(self.coefs_, self.intercepts_)
        _check_finite_objective(loss, coef_grads + intercept_grads)
        return loss, coef_grads, intercept_grads

    def _loss_function(self, X, y, sample_weight=None, dtype=None, training_path=False):
        """``f(coefs, intercepts) -> (loss, coef_grads, intercept_grads)`` on
        the validated ``X``, ``y`` and weights: the objective at any weights.
        ``dtype`` casts the data (the gradient check works in float64).

        By default ``f`` is the reference functions of ``_network``. With
        ``training_path``, it is the code ``fit`` runs: the fused objective of
        ``_fast`` (in one shard)."""
        check_is_fitted(self)
        X, y, sample_weight = self._validate_training_data(X, y, sample_weight, reset=False)
        dtype = X.dtype if dtype is None else dtype
        X = X.astype(dtype, copy=False)
        if sample_weight is not None:
            sample_weight = sample_weight.astype(dtype, copy=False)
        self._check_kind_of_targets(y)
        Y = _targets(y, self.classes_, dtype)
        weights = self._combined_weights(y, self.classes_, sample_weight, dtype)

        def loss_function(coefs, intercepts):
            return objective(
                X, Y, coefs, intercepts, self.activation, self.out_activation_, self.alpha,
                weights,
            )

        if not training_path:
            return loss_function
        layer_sizes = [W.shape[0] for W in self.coefs_] + [self.coefs_[-1].shape[1]]
        fused = FusedObjective(layer_sizes, self.activation, self.out_activation_, self.alpha,
                               dtype)

        def fused_loss_function(coefs, intercepts):
            with np.errstate(over="ignore"):  # a saturated sigmoid is 0, as in fit
                loss, (gradient,) = fused([flatten(coefs, intercepts, dtype)], X, Y, weights)
            coef_grads, intercept_grads = flat_views(gradient.copy(), layer_sizes)
            return loss, coef_grads, intercept_grads

        return fused_loss_function


class _Net(NamedTuple):
    """The shape of the network being trained."""

    layer_sizes: list  #: [n_features, *hidden_layer_sizes, n_outputs]
    output: str  #: "softmax" or "logistic"


def _same_layout(state, fresh):
    """Whether an optimizer state saved earlier fits the parameters that
    ``fresh`` (a new state for them) was made for."""
    if type(state) is not type(fresh):
        return False
    shapes = lambda s: [a.shape for f in s if isinstance(f, tuple) for a in f]  # noqa: E731
    return shapes(state) == shapes(fresh)


def _metadata(sample_weight):
    return {} if sample_weight is None else {"sample_weight": sample_weight}


def _is_multilabel(y):
    return y.ndim == 2 and type_of_target(y) == "multilabel-indicator"


def _is_multilabel_classes(classes):
    """Whether partial_fit's ``classes`` may name the columns of a
    multilabel indicator matrix with a single label."""
    return len(classes) == 1 and classes[0] == 0


def _output_activation(y, classes):
    """A softmax over the classes, or logistic units: one for two classes,
    one per label for multilabel targets."""
    return "logistic" if _is_multilabel(y) or len(classes) == 2 else "softmax"


def _proba_from_logits(Z, output):
    """Probabilities from the logits, which a softmax overwrites (use them
    before, or pass a copy). Two classes: see
    :func:`_two_class_probabilities`. Multilabel targets have one unit per
    label."""
    # logits that overflowed give non-finite probabilities, which the callers
    # refuse with a ValueError: no NumPy warning on the way
    with np.errstate(over="ignore", invalid="ignore"):
        if output == "softmax":
            return fast_softmax(Z)  # Z is the caller's own: fast_logits made it
        if Z.shape[1] == 1:
            return np.column_stack(_two_class_probabilities(Z[:, 0]))
        return OUTPUTS["logistic"](Z)


def _two_class_probabilities(z):
    """``(P(classes_[0]), P(classes_[1]))`` from the single logistic unit's
    logits ``z``: ``sigmoid(z)`` for the second, and ``1 - sigmoid(z)``
    computed as ``sigmoid(-z)`` for the first, which keeps its precision
    where it is tiny."""
    return OUTPUTS["logistic"](-z), OUTPUTS["logistic"](z)


def _targets(y, classes, dtype):
    """0/1 targets: the indicator matrix itself for multilabel ``y``; else one
    column per class, or the single column of ``classes[1]`` for two classes
    (the logistic unit's target)."""
    if y.ndim == 2:
        if y.shape[1] != len(classes):
            raise ValueError(
                f"y has {y.shape[1]} label columns; the model was fitted with {len(classes)}."
            )
        return y.astype(dtype)
    return _one_hot(y, classes, dtype)


def _one_hot(y, classes, dtype):
    hits = y[:, None] == classes[None, :]
    unknown = ~hits.any(axis=1)
    if unknown.any():
        raise ValueError(
            f"y contains labels not seen during fit: {np.unique(y[unknown]).tolist()}; "
            f"the classes are {classes.tolist()}."
        )
    Y = hits.astype(dtype)
    return Y[:, 1:] if len(classes) == 2 else Y


def _class_indices(Y):
    """The index in ``classes_`` of each row of 0/1 targets made by :func:`_one_hot`."""
    return Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.intp)


@contextmanager
def _labels_as_value_errors(name):
    """Labels are sorted into ``classes_``: labels of types that do not sort
    (``None`` or numbers among strings) raise NumPy's TypeError there, as do
    kinds scikit-learn refuses (bytes); both become a ValueError."""
    try:
        yield
    except TypeError as exc:
        raise ValueError(
            f"The labels of {name} are not supported: {exc}. Give labels of one type, "
            "such as all strings or all integers."
        ) from exc


def _in_dtype(weights, dtype, name):
    """The float64 ``weights`` in ``dtype``, refused if any is beyond its range."""
    largest = float(weights.max(initial=0))
    if largest > float(np.finfo(dtype).max):
        raise ValueError(
            f"{name} holds {largest:g}, beyond the range of {np.dtype(dtype)}, the dtype of "
            "the model's weights and data; rescale the weights, or fit a new model on "
            "float64 X."
        )
    return weights.astype(dtype, copy=False)


def _check_total_weight(weights):
    """The objective divides by ``S``, the weights' sum, in their dtype."""
    with np.errstate(over="ignore", divide="ignore"):
        total = weights.sum()
        inverse = weights.dtype.type(1) / total
    if not total > 0:
        raise ValueError(
            "The sample weights (times the class weights) sum to zero: no sample would count."
        )
    if not (np.isfinite(total) and np.isfinite(inverse)):
        raise ValueError(
            f"The sample weights (times the class weights) sum to {float(total):g}, too large or "
            f"too small to divide by in {weights.dtype}; rescale them."
        )
    smallest = weights[weights > 0].min()
    if smallest < np.finfo(weights.dtype).tiny:  # then a minibatch's S may be 1/0
        raise ValueError(
            f"The sample weights (times the class weights) include {float(smallest):g}, a "
            f"positive weight below the smallest normal {weights.dtype} number: a minibatch "
            "of such weights would sum to a number too small to divide by. Rescale them, "
            "or set such weights to 0."
        )


def _sparse(indicator):
    """A CSR indicator matrix, of the sparse interface scikit-learn is set to
    return (scipy's sparse matrices unless ``sparse_interface='sparray'``)."""
    if get_config().get("sparse_interface") == "sparray":
        return sparse.csr_array(indicator)
    return sparse.csr_matrix(indicator)


def _check_finite_objective(loss, gradients):
    """``loss_gradient`` and ``check_gradients`` refuse to report a
    non-finite objective or gradient: it comes from values that overflow."""
    if not (np.isfinite(loss) and all(np.isfinite(g).all() for g in gradients)):
        raise ValueError(
            f"The objective (loss={loss}) or its gradient is not finite at the current "
            "weights for this input: the network's values overflow (or the weights are "
            "not finite). Standardise the features, or fit the model again."
        )


def _check_finite(values):
    if not np.isfinite(values).all():
        raise ValueError(
            "The network produced non-finite outputs for this input; its values "
            "are probably too large. Standardise the features."
        )
