"""Jobs: each runs one end-to-end workflow into a run folder."""
