"""Jobs: each runs one end-to-end workflow into a run folder, in three parts per job package:
``pipeline`` (config and pure computing), ``report`` (the report's sections) and ``run`` (the edge).
"""
