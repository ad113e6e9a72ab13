"""The models' own errors: code that serves a model imports them without scikit-learn."""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``; same bases as scikit-learn's NotFittedError,
    so callers that catch ValueError or AttributeError catch it too."""


def check_fitted(model: object, attribute: str) -> None:
    """NotFittedError unless ``model`` has ``attribute``, which ``fit`` sets."""
    if not hasattr(model, attribute):
        raise NotFittedError(f"{type(model).__name__} is not fitted yet; call fit() first")
