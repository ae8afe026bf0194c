"""LossCurveDisplay: plot the learning curves that a fit records.

matplotlib is an optional dependency (the ``plot`` extra): it is imported
only when something is drawn, so that the rest of skbackprop works without it.
"""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

_INSTALL_HINT = "pip install 'skbackprop[plot]'"


def _import_matplotlib():
    """``(pyplot, ticker)``, or an ImportError that says how to install them."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError as exc:
        raise ImportError(
            "LossCurveDisplay needs matplotlib, which is not installed. "
            f"Install it with the plot extra: {_INSTALL_HINT}"
        ) from exc
    return plt, ticker


def _as_curve(values, name, allow_none=True):
    """``values`` as a 1-D float array (None stays None when allowed)."""
    if values is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required; got None.")
    try:
        curve = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers; got {values!r}.") from exc
    if curve.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got an array of shape {curve.shape}.")
    if curve.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to plot.")
    return curve


class LossCurveDisplay:
    """Learning curves of a fitted :class:`BackpropMLPClassifier`.

    Draws the training loss of every epoch (every iteration for
    ``solver="lbfgs"``). When the fit held out validation data
    (``early_stopping=True``), it also draws the loss on that data on the
    same axes, the validation accuracy on a second y-axis on the right, and a
    dashed vertical line at the epoch of the best validation accuracy, whose
    weights the classifier kept. When the divergence guard ended the fit
    (``diverged_``), a dotted vertical line marks the epoch that diverged
    instead: the guard restored the weights of the best epoch or the
    starting weights, and the fitted attributes do not say which.

    Several displays can share one axes, to compare fits: each draws its
    lines in the next colours of the axes' colour cycle, they share one
    validation-accuracy axis, and one legend lists the lines of all of them,
    prefixed by each display's ``name`` (or, without one, its rank).

    Create it with :meth:`from_estimator`, or from the curves themselves and
    then call :meth:`plot`. matplotlib is needed only for drawing; install it
    with ``pip install 'skbackprop[plot]'``.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        The training loss after each epoch, as in ``loss_curve_``.
    validation_loss_curve : array-like of shape (n_validated,), default=None
        The objective on the validation data after each epoch, as in
        ``validation_loss_curve_``. It belongs to the last epochs of
        ``loss_curve`` (it can be shorter when ``warm_start`` switched
        ``early_stopping`` on), or, when ``diverged``, to the epochs before
        the last one, which was not validated. (One case is drawn wrong: a
        ``warm_start`` refit that continued an early-stopping fit whose
        last epoch diverged. That epoch has no validation values, the
        curves do not say which epoch it was, and the earlier fit's values
        are drawn one epoch late.)
    validation_scores : array-like of shape (n_validated,), default=None
        The accuracy on the validation data after each epoch, as in
        ``validation_scores_`` (finite), aligned with ``loss_curve`` as
        ``validation_loss_curve`` is.
    xlabel : str, default="epoch"
        What one step of the curves is: ``"epoch"``, or ``"iteration"`` for
        L-BFGS.
    diverged : bool, default=False
        Whether the divergence guard ended the fit, as in ``diverged_``: its
        last epoch is then marked, and no epoch is marked as kept.
    name : str, default=None
        Prefixes the labels of the lines, as in ``"name: training loss"``.
        None: no prefix while the display is alone on its axes; on axes that
        hold several displays, the ones without a name are named by their
        rank on the axes, ``"#1"``, ``"#2"``...

    Attributes
    ----------
    best_epoch : int or None
        The (1-based) epoch whose weights the classifier kept: the first of
        the best validation accuracy. None without ``validation_scores``, and
        when ``diverged``.
    ax_ : matplotlib Axes
        The axes of the losses.
    ax2_ : matplotlib Axes or None
        The second y-axis, sharing ``ax_``'s x-axis, that holds the
        validation accuracy; None when there are no validation scores. The
        displays drawn on one axes share it.
    figure_ : matplotlib Figure
        The figure of ``ax_``.
    lines_ : dict of str to matplotlib Line2D
        The lines drawn, by name: ``"loss"``; with validation data
        ``"validation_loss"`` (if given), ``"validation_score"`` and
        ``"best_epoch"`` (the dashed vertical line, in the colour of the
        accuracy); and ``"diverged"`` (the dotted vertical line, in the
        colour of the training loss) instead of ``"best_epoch"`` when
        ``diverged``.
    legend_ : matplotlib Legend
        The one legend of all the labelled lines on ``ax_`` and on its second
        y-axis, on the topmost axes. A later display drawn on the same axes
        replaces it with one that lists its lines too.

    See Also
    --------
    BackpropMLPClassifier : Its fitted ``loss_curve_``,
        ``validation_loss_curve_`` and ``validation_scores_`` are drawn here.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_iris
    >>> from skbackprop import BackpropMLPClassifier, LossCurveDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BackpropMLPClassifier(hidden_layer_sizes=(20,), learning_rate_init=0.01,
    ...                             early_stopping=True, validation_fraction=0.2,
    ...                             max_iter=300, random_state=0).fit(X, y)
    >>> ax = Figure().subplots()
    >>> display = LossCurveDisplay.from_estimator(clf, ax=ax)
    >>> sorted(display.lines_)
    ['best_epoch', 'loss', 'validation_loss', 'validation_score']
    >>> display.ax_.get_xlabel(), display.ax_.get_ylabel(), display.ax2_.get_ylabel()
    ('epoch', 'loss', 'validation accuracy')
    >>> n_epochs = len(clf.loss_curve_)
    >>> len(display.lines_["loss"].get_xdata()) == n_epochs
    True
    >>> clf.validation_scores_[display.best_epoch - 1] == clf.best_validation_score_
    True
    """

    def __init__(
        self, loss_curve, *, validation_loss_curve=None, validation_scores=None, xlabel="epoch",
        diverged=False, name=None,
    ):
        self.loss_curve = _as_curve(loss_curve, "loss_curve", allow_none=False)
        self.validation_loss_curve = _as_curve(validation_loss_curve, "validation_loss_curve")
        self.validation_scores = _as_curve(validation_scores, "validation_scores")
        if self.validation_scores is not None and not np.isfinite(self.validation_scores).all():
            # (the loss curves may end in the inf or NaN of a diverged epoch)
            raise ValueError(
                "validation_scores must be finite, as accuracies are; got "
                f"{self.validation_scores.tolist()}."
            )
        if not isinstance(xlabel, str):
            raise TypeError(f"xlabel must be a string; got {xlabel!r}.")
        self.xlabel = xlabel
        if not isinstance(diverged, (bool, np.bool_)):
            raise TypeError(f"diverged must be a bool; got {diverged!r}.")
        self.diverged = bool(diverged)
        self.name = _check_name(name)
        # The validation curves end with the last validated epoch: the last
        # one, unless the divergence guard stopped training in it.
        self._last_validated = len(self.loss_curve) - self.diverged
        for curve_name, curve in [
            ("validation_loss_curve", self.validation_loss_curve),
            ("validation_scores", self.validation_scores),
        ]:
            if curve is not None and len(curve) > self._last_validated:
                raise ValueError(
                    f"{curve_name} has {len(curve)} entries, but only {self._last_validated} "
                    f"of the {len(self.loss_curve)} epochs of loss_curve can have been "
                    "validated" + (" (the last one diverged)." if self.diverged else ".")
                )
        if self.validation_scores is None or self.diverged:
            self.best_epoch = None
        else:
            first = self._last_validated - len(self.validation_scores) + 1
            self.best_epoch = first + int(np.argmax(self.validation_scores))

    @classmethod
    def from_estimator(cls, estimator, ax=None, *, name=None, **kwargs):
        """Plot the learning curves of a fitted estimator.

        Parameters
        ----------
        estimator : BackpropMLPClassifier or Pipeline
            A fitted classifier with a ``loss_curve_``, or a fitted pipeline
            ending in one. scikit-learn's ``MLPClassifier`` works too when
            fitted with the ``'sgd'`` or ``'adam'`` solver (with ``'lbfgs'``
            it records no ``loss_curve_``).
        ax : matplotlib Axes, default=None
            Where to draw; None draws on the axes of a new figure. Axes that
            hold another display already get this one's curves too.
        name : str, default=None
            Prefixes the labels of the lines, as in ``"name: training
            loss"``. None: no prefix while the display is alone on its axes;
            with other displays, its rank on the axes, such as ``"#2"``.
        **kwargs : dict
            Passed to :meth:`plot`, hence to matplotlib for the training
            loss line.

        Returns
        -------
        display : LossCurveDisplay
            The display, drawn.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        TypeError
            If the estimator records no ``loss_curve_``.

        Examples
        --------
        Two learning rates on one axes:

        >>> from matplotlib.figure import Figure
        >>> from sklearn.datasets import load_iris
        >>> from skbackprop import BackpropMLPClassifier, LossCurveDisplay
        >>> X, y = load_iris(return_X_y=True)
        >>> ax = Figure().subplots()
        >>> displays = []
        >>> for lr in [0.01, 0.1]:
        ...     clf = BackpropMLPClassifier(hidden_layer_sizes=(20,), learning_rate_init=lr,
        ...                                 early_stopping=True, validation_fraction=0.2,
        ...                                 max_iter=300, random_state=0).fit(X, y)
        ...     displays.append(LossCurveDisplay.from_estimator(clf, ax=ax, name=f"lr={lr}"))
        >>> displays[0].ax2_ is displays[1].ax2_  # one validation-accuracy axis
        True
        >>> [text.get_text() for text in displays[1].legend_.get_texts()][:3]
        ['lr=0.01: training loss', 'lr=0.01: validation loss', 'lr=0.01: validation accuracy']
        >>> len(displays[1].legend_.get_texts())  # four lines of each display
        8
        """
        final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
        check_is_fitted(final)
        loss_curve = getattr(final, "loss_curve_", None)
        if loss_curve is None:
            raise TypeError(
                f"{type(final).__name__} has no loss_curve_: LossCurveDisplay plots the "
                "training curves of a fitted BackpropMLPClassifier, or of scikit-learn's "
                "MLPClassifier fitted with the 'sgd' or 'adam' solver (with 'lbfgs', "
                "MLPClassifier records no loss_curve_)."
            )
        display = cls(
            loss_curve,
            validation_loss_curve=_nonempty(getattr(final, "validation_loss_curve_", None)),
            validation_scores=_nonempty(getattr(final, "validation_scores_", None)),
            xlabel="iteration" if getattr(final, "solver", None) == "lbfgs" else "epoch",
            diverged=bool(getattr(final, "diverged_", False)),
            name=name,
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the curves.

        Each line takes the next colour of the colour cycle of ``ax``
        (``C0``, ``C1``, ``C2`` for the training loss, validation loss and
        validation accuracy of a display alone on new axes), so that the
        displays drawn on one axes can be told apart; the vertical line of
        the best epoch takes the colour of the validation accuracy.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; None draws on the axes of a new figure. With
            validation scores, a second y-axis is added to it
            (``ax.twinx()``), unless an earlier display added one: then the
            accuracy goes on that one. The legend is drawn anew, with the
            lines of all the displays on ``ax``.
        name : str, default=None
            Prefixes the labels of the lines, in place of the display's
            ``name``; None keeps that.
        **kwargs : dict
            Passed to ``ax.plot`` for the training loss line, overriding its
            defaults (``label="training loss"``, and the next colour of the
            cycle). A ``label`` given here is not prefixed.

        Returns
        -------
        self : LossCurveDisplay
            The display, with ``ax_``, ``ax2_``, ``figure_``, ``lines_`` and
            ``legend_`` set.

        Raises
        ------
        ImportError
            If matplotlib is not installed.

        Examples
        --------
        The curves of a fit that diverged in its fifth epoch, whose validation
        stopped after the fourth:

        >>> from matplotlib.figure import Figure
        >>> from skbackprop import LossCurveDisplay
        >>> display = LossCurveDisplay(
        ...     [1.0, 0.6, 0.5, 0.45, 80.0], validation_scores=[0.5, 0.9, 0.9, 0.8],
        ...     diverged=True,
        ... ).plot(ax=Figure().subplots())
        >>> display.lines_["validation_score"].get_xdata()
        array([1, 2, 3, 4])
        >>> display.best_epoch is None  # the guard kept epoch 2's or the starting weights
        True
        >>> display.lines_["diverged"].get_label()
        'diverged (epoch 5): earlier weights restored'
        """
        plt, ticker = _import_matplotlib()
        name = self.name if name is None else _check_name(name)
        if ax is None:
            _, ax = plt.subplots(layout="constrained")  # room for the right-hand label
        elif not isinstance(ax, plt.Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None; got {ax!r}.")
        record = _AxesRecord.of(ax)

        lines, labels = {}, {}  # labels: those that the display's name prefixes
        n_epochs = len(self.loss_curve)
        labels["loss"] = None if "label" in kwargs else "training loss"
        (lines["loss"],) = ax.plot(
            _steps(self.loss_curve, n_epochs), self.loss_curve,
            **{"label": "training loss", **kwargs},
        )
        if self.validation_loss_curve is not None:
            labels["validation_loss"] = "validation loss"
            (lines["validation_loss"],) = ax.plot(
                _steps(self.validation_loss_curve, self._last_validated),
                self.validation_loss_curve, label=labels["validation_loss"],
            )
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel("loss")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))

        ax2 = None
        if self.validation_scores is not None:
            ax2 = record.twin(ax)
            color = _next_color(ax)  # the cycle of ax: ax2 has a cycle of its own
            labels["validation_score"] = "validation accuracy"
            (lines["validation_score"],) = ax2.plot(
                _steps(self.validation_scores, self._last_validated), self.validation_scores,
                label=labels["validation_score"], color=color,
            )
            if self.best_epoch is not None:
                first = self._last_validated - len(self.validation_scores) + 1
                best = self.validation_scores[self.best_epoch - first]
                labels["best_epoch"] = (
                    f"best validation accuracy {best:.4g} ({self.xlabel} {self.best_epoch})"
                )
                lines["best_epoch"] = ax2.axvline(
                    self.best_epoch, color=color, linestyle="--", linewidth=1,
                    label=labels["best_epoch"],
                )
            ax2.set_ylabel("validation accuracy")
        if self.diverged:
            labels["diverged"] = f"diverged ({self.xlabel} {n_epochs}): earlier weights restored"
            lines["diverged"] = ax.axvline(
                n_epochs, color=lines["loss"].get_color(), linestyle=":", linewidth=1,
                label=labels["diverged"],
            )

        record.add(name, [(lines[key], labels[key]) for key in lines])
        self.legend_ = record.draw_legend(ax)
        self.ax_, self.ax2_, self.figure_, self.lines_ = ax, ax2, ax.figure, lines
        return self


class _AxesRecord:
    """What the displays drew on one axes: the second y-axis of the validation
    accuracy, and the lines of each display, in order, with the labels that
    a display's name prefixes (None for a label given by the caller).

    It is kept on the axes themselves (as pandas keeps a twin in
    ``ax.right_ax``), so that it goes when they go.
    """

    _ATTRIBUTE = "_skbackprop_loss_curve_displays"

    def __init__(self):
        self._twin = None
        self._groups = []  # per display: (name, [(line, label or None), ...])

    @classmethod
    def of(cls, ax):
        record = getattr(ax, cls._ATTRIBUTE, None)
        if record is None:
            record = cls()
            setattr(ax, cls._ATTRIBUTE, record)
        record._forget_removed(ax)
        return record

    def _forget_removed(self, ax):
        """Forget the lines (and twin) that were removed since, e.g. by ``ax.cla()``."""
        if self._twin is not None and self._twin not in ax.figure.axes:
            self._twin = None
        groups = []
        for name, lines in self._groups:
            lines = [(line, label) for line, label in lines if _is_drawn(line)]
            if lines:
                groups.append((name, lines))
        self._groups = groups

    def twin(self, ax):
        """The second y-axis of ``ax`` for the validation accuracy: made once."""
        if self._twin is None:
            self._twin = ax.twinx()
        return self._twin

    def add(self, name, lines):
        """Record a display's lines; label the lines of all of them."""
        self._groups.append((name, lines))
        several = len(self._groups) > 1
        for rank, (name, lines) in enumerate(self._groups, start=1):
            prefix = name if name is not None else f"#{rank}" if several else None
            for line, label in lines:
                if label is not None:
                    line.set_label(label if prefix is None else f"{prefix}: {label}")

    def draw_legend(self, ax):
        """Draw the one legend of the labelled lines on ``ax`` and its twin,
        each display's lines together, on the topmost axes."""
        all_axes = [ax] if self._twin is None else [ax, self._twin]
        handles = [line for _, lines in self._groups for line, _ in lines]
        for each in all_axes:
            if each.get_legend() is not None:
                each.get_legend().remove()
            others, _ = each.get_legend_handles_labels()  # the caller's own artists too
            handles += [artist for artist in others if not any(artist is h for h in handles)]
        handles = [h for h in handles if not h.get_label().startswith("_")]
        if self._twin is None:
            return ax.legend(handles=handles, loc="best")
        # On the twin axes, which are drawn above every line. Its "best" place
        # would only avoid the accuracy, so go where neither falling losses nor
        # rising accuracy usually are.
        return self._twin.legend(handles=handles, loc="center right")


def _check_name(name):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string or None; got {name!r}.")
    return name


def _nonempty(values):
    """None for a missing or empty curve (a fit that diverged in its first
    epoch validated none)."""
    return None if values is None or len(values) == 0 else values


def _is_drawn(line):
    return line.axes is not None and any(each is line for each in line.axes.get_lines())


def _next_color(ax):
    """The next colour of the colour cycle of ``ax``, which it then moves past."""
    (probe,) = ax.plot([], [])  # public API only: an empty line takes it and is removed
    color = probe.get_color()
    probe.remove()
    return color


def _steps(curve, last):
    """The 1-based epoch (or iteration) numbers of ``curve``, which ends at ``last``."""
    return np.arange(last - len(curve) + 1, last + 1)
