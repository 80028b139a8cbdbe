"""The compare job."""
