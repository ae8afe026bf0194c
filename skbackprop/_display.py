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
    vertical line at the epoch of the best validation accuracy, whose
    weights the classifier kept.

    Create it with :meth:`from_estimator`, or from the curves themselves and
    then call :meth:`plot`. matplotlib is needed only for drawing; install it
    with ``pip install 'skbackprop[plot]'``.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        The training loss after each epoch, as in ``loss_curve_``.
    validation_loss_curve : array-like of shape (n_validated,), default=None
        The objective on the validation data after each epoch, as in
        ``validation_loss_curve_``.
    validation_scores : array-like of shape (n_validated,), default=None
        The accuracy on the validation data after each epoch, as in
        ``validation_scores_``.
    xlabel : str, default="epoch"
        What one step of the curves is: ``"epoch"``, or ``"iteration"`` for
        L-BFGS.

    Attributes
    ----------
    best_epoch : int or None
        The (1-based) epoch of the first best validation accuracy; None
        without ``validation_scores``.
    ax_ : matplotlib Axes
        The axes of the losses.
    ax2_ : matplotlib Axes or None
        The second y-axis, sharing ``ax_``'s x-axis, that holds the
        validation accuracy; None when there are no validation scores.
    figure_ : matplotlib Figure
        The figure of ``ax_``.
    lines_ : dict of str to matplotlib Line2D
        The lines drawn, by name: ``"loss"``, and with validation data
        ``"validation_loss"`` (if given), ``"validation_score"`` and
        ``"best_epoch"`` (the vertical line).
    legend_ : matplotlib Legend
        The one legend of all the lines, on the topmost axes.

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
        self, loss_curve, *, validation_loss_curve=None, validation_scores=None, xlabel="epoch"
    ):
        self.loss_curve = _as_curve(loss_curve, "loss_curve", allow_none=False)
        self.validation_loss_curve = _as_curve(validation_loss_curve, "validation_loss_curve")
        self.validation_scores = _as_curve(validation_scores, "validation_scores")
        if not isinstance(xlabel, str):
            raise TypeError(f"xlabel must be a string; got {xlabel!r}.")
        self.xlabel = xlabel
        if self.validation_scores is None:
            self.best_epoch = None
        else:
            self.best_epoch = int(np.argmax(self.validation_scores)) + 1

    @classmethod
    def from_estimator(cls, estimator, ax=None, **kwargs):
        """Plot the learning curves of a fitted estimator.

        Parameters
        ----------
        estimator : BackpropMLPClassifier or Pipeline
            A fitted classifier with a ``loss_curve_``, or a fitted pipeline
            ending in one. scikit-learn's ``MLPClassifier`` works too.
        ax : matplotlib Axes, default=None
            Where to draw; None draws on the axes of a new figure.
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
        """
        final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
        check_is_fitted(final)
        loss_curve = getattr(final, "loss_curve_", None)
        if loss_curve is None:
            raise TypeError(
                f"{type(final).__name__} has no loss_curve_: LossCurveDisplay plots the "
                "training curves of BackpropMLPClassifier (or MLPClassifier) fitted with "
                "the 'sgd', 'adam' or 'lbfgs' solver."
            )
        display = cls(
            loss_curve,
            validation_loss_curve=getattr(final, "validation_loss_curve_", None),
            validation_scores=getattr(final, "validation_scores_", None),
            xlabel="iteration" if getattr(final, "solver", None) == "lbfgs" else "epoch",
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; None draws on the axes of a new figure. With
            validation scores, a second y-axis is added to it
            (``ax.twinx()``).
        **kwargs : dict
            Passed to ``ax.plot`` for the training loss line, overriding its
            defaults (``label="training loss"``, ``color="C0"``).

        Returns
        -------
        self : LossCurveDisplay
            The display, with ``ax_``, ``ax2_``, ``figure_``, ``lines_`` and
            ``legend_`` set.

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        """
        plt, ticker = _import_matplotlib()
        if ax is None:
            _, ax = plt.subplots(layout="constrained")  # room for the right-hand label

        lines = {}
        style = {"label": "training loss", "color": "C0", **kwargs}
        (lines["loss"],) = ax.plot(_steps(self.loss_curve), self.loss_curve, **style)
        if self.validation_loss_curve is not None:
            (lines["validation_loss"],) = ax.plot(
                _steps(self.validation_loss_curve), self.validation_loss_curve,
                label="validation loss", color="C1",
            )
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel("loss")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))

        ax2 = None
        if self.validation_scores is not None:
            ax2 = ax.twinx()
            (lines["validation_score"],) = ax2.plot(
                _steps(self.validation_scores), self.validation_scores,
                label="validation accuracy", color="C2",
            )
            best = self.validation_scores[self.best_epoch - 1]
            lines["best_epoch"] = ax2.axvline(
                self.best_epoch, color="0.4", linestyle="--", linewidth=1,
                label=f"best validation accuracy {best:.4g} ({self.xlabel} {self.best_epoch})",
            )
            ax2.set_ylabel("validation accuracy")

        if ax2 is None:
            self.legend_ = ax.legend(handles=list(lines.values()), loc="best")
        else:
            # On the twin axes, which are drawn above every line. Its "best"
            # place would only avoid the accuracy, so go where neither falling
            # losses nor rising accuracy usually are.
            self.legend_ = ax2.legend(handles=list(lines.values()), loc="center right")
        self.ax_, self.ax2_, self.figure_, self.lines_ = ax, ax2, ax.figure, lines
        return self


def _steps(curve):
    """The 1-based epoch (or iteration) numbers of ``curve``."""
    return np.arange(1, len(curve) + 1)
