"""``tfgan-mix bench``: the measurements behind BENCHMARKS.md, above every other layer (it trains,
exports, serves and samples).

* ``harness``: profiles, runs, the ``Bench`` that trains and evaluates them, a study's ``Table``,
  and ``note`` (the prose in ``notes/``);
* one module per study: ``paper000`` (with ``paper000_parabolas``, Table 1's other half) ...
  ``paper004`` (the papers' toy tables, each trained run evaluated on its raw samples and on what
  its exported sampler accepts), ``served`` (the
  served-sample targets, through the exported ONNX file and SavedModel), ``speed`` (with
  ``flops``, which counts a traced step's FLOPs);
* ``report``: BENCHMARKS.md, the plots and ``results.json``, and the merge of an ``--only`` run;
* ``run``: ``run_bench`` and ``SECTIONS``, what the command calls.

``notes/*.md`` hold the words under each table, with placeholders the studies fill from the measured
values; ``results/`` holds the committed report's numbers and plots (``--out .`` writes there).
Importing this package loads nothing; ``run`` loads TensorFlow.
"""
