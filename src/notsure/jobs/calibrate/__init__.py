"""The calibrate job."""
