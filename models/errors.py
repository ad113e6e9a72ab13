"""The models' own errors: code that serves a model imports them without scikit-learn."""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``; same bases as scikit-learn's NotFittedError,
    so callers that catch ValueError or AttributeError catch it too."""
