"""Values every module shares; re-exported as ``notsure.NOT_SURE`` and ``notsure.NOT_SURE_NAME``."""

#: Prediction value meaning "abstain". Never a valid class index (those are >= 0).
NOT_SURE: int = -1

#: How an abstention is written wherever a person reads it.
NOT_SURE_NAME: str = "not_sure"

#: The package version (``notsure.__version__``), here so that reports can name it without
#: importing the package root.
VERSION: str = "0.1.0"
