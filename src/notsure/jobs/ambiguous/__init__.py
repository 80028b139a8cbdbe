"""The ambiguous job."""
