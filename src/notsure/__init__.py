"""notsure: classifiers that know when they are not sure, and evaluation you can audit."""

from notsure.errors import NotsureError

__version__ = "0.1.0"

#: Prediction value meaning "abstain". Never a valid class index (those are >= 0).
NOT_SURE: int = -1

#: How an abstention is written wherever a person reads it.
NOT_SURE_NAME: str = "not_sure"

__all__ = ["NOT_SURE", "NOT_SURE_NAME", "NotsureError", "__version__"]
