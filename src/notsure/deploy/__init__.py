"""The deployed predictor of a selective run, apart from the jobs that train it.

``folder``: the run folder's files, each named once, written by the selective job and read by
everything else; ``predictor``: the ensemble, its thresholds and guard, and their decisions;
``engine``: the predictor loaded once and scored by ONNX Runtime or torch (``predict``,
``evaluate``, ``serve``).
"""
