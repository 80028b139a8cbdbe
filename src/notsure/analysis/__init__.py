"""Analyses shared by jobs: neighbours, dataset statistics, integrity checks."""
