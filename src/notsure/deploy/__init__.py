"""The deployed predictor of a selective run, apart from the jobs that train it.

``selective_run``: the run folder's files, written by the selective job and read by everything
else; ``predictor``: the ensemble, its thresholds and guard, and their decisions; ``engine``: the
predictor loaded once and scored by ONNX Runtime or torch; and the commands on a deployed run:
``predict_files`` (``notsure predict``), ``evaluate`` (``notsure evaluate``) and ``export``
(``notsure export``). ``notsure.serve`` serves it.
"""
