"""The selective job."""
