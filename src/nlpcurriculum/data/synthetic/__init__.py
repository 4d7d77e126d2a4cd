"""Synthetic corpora with known ground truth, one module per task family.

Every generator is seeded (``seed: int | numpy.random.Generator``) and returns plain Python
records (dicts of str/int/float/list) so stages can write them as JSON lines unchanged.

Modules: ``arithmetic`` (multi-digit addition/multiplication with column-wise steps),
``kv_recall`` (key-value lookup at a controlled distance), ``sequence`` (copy / reverse),
``instructions`` (instruction/response pairs of several task types), ``preferences``
(chosen/rejected pairs scored by a known rule), ``classification`` (topic / sentiment with
controllable label noise), ``noise`` (typos, character swaps, word shuffles), ``duplicates``
(planted exact and near duplicates with cluster ids), ``stories`` (written separately).

Submodules are not imported here, so importing one family costs nothing for the others.
"""
