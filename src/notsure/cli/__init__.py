"""The ``notsure`` command line: one subcommand per job."""
