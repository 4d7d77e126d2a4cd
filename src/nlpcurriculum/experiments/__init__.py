"""The experiment behind every curriculum item: one home per curriculum section.

Layout. Section ``<id>`` of ``curriculum.yaml`` (e.g. ``kv-cache``) lives in
``experiments/<module>.py``, ``<module>`` being the id with ``-`` replaced by ``_``
(``experiments/kv_cache.py``); ``curriculum.yaml`` names it (``module:``) and the README's status
table shows it. A section whose items several DVC stages run is a package
``experiments/<module>/`` with one module per stage, named after the stage
(``experiments/deduplication_and_filtering/dedup.py`` for stage ``dedup``), and an ``__init__``
that lists them and gives the section's ``ITEMS`` (:func:`lazy_items`). What the experiments
share is in :mod:`~nlpcurriculum.experiments.harness`.

A module's config dataclass is its stage's section of ``params/<section_id>.yaml``; nested
``model`` and ``train`` sub-sections map onto
:class:`~nlpcurriculum.models.miniformer.MiniFormerConfig` and
:class:`~nlpcurriculum.training.trainer.TrainerConfig`, which have no defaults in code: the params
name a preset of ``params/presets.yaml`` and override what differs. Finding bounds sit in the
section's ``checks:``.

The entry point, the same in every stage's module:

- the stage's config dataclass (its params section, above);
- ``ITEMS``: the registry ids of the items it produces, a tuple, in the order ``run`` returns
  them (a module with several items keeps ``ITEM``, the id of each by short name);
- ``Inputs``: a frozen dataclass, what ``run`` reads (texts, token streams, a trained model, the
  tables an earlier library call made; hooks such as a progress ``log`` are optional fields).
  The modules that read only the corpus's splits share one,
  :class:`~nlpcurriculum.experiments.harness.CorpusSplits` (``Inputs = CorpusSplits``);
- ``run(cfg, inputs) -> list[ItemResult]``: the experiment, one
  :class:`~nlpcurriculum.results.ItemResult` per item. Where the stage also saves what the
  experiment built (a trained model, word vectors, an augmented dataset, per-rank logs), the
  module has an ``Outputs`` dataclass too and ``run(cfg, inputs, outputs)`` fills it in.

A stage script is then params -> ``Inputs`` -> ``run`` -> atomic outputs -> ``publish``
(``stages/kv_cache.py``). When the stage first calls the library (``dedup`` deduplicates the
documents, ``tokenizer_compare`` trains the tokenizers it saves), ``Inputs`` carries that result
and ``run`` only measures it. Pure library code: objects in, results out; the stage does the I/O
and the MLflow logging.

Submodules are imported on demand (``from nlpcurriculum.experiments.kv_cache import run``), so
importing this package pulls in neither torch nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_items(package: str, stages: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """A module ``__getattr__`` that gives a section package its ``ITEMS``.

    ``ITEMS`` is the stage modules' ``ITEMS`` one after the other, in the order of ``stages``,
    imported on first use: a stage script imports only its own module, not its siblings.

    Example: ``__getattr__ = lazy_items(__name__, ("dedup", "filter"))`` in
    ``experiments/deduplication_and_filtering/__init__.py``.
    """

    def __getattr__(name: str) -> tuple[str, ...]:
        if name != "ITEMS":
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return tuple(item for stage in stages for item in import_module(f"{package}.{stage}").ITEMS)

    return __getattr__
