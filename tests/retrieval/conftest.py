"""Fixtures of the retrieval tests: the shipped SciFact copy, loaded and analysed once."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

SCIFACT = REPO / "data" / "beir_scifact"


@pytest.fixture(scope="session")
def scifact():
    from nlpcurriculum.retrieval.beir import load_beir

    return load_beir(SCIFACT, split="test")


@pytest.fixture(scope="session")
def scifact_tokens(scifact):
    """``(document terms, query terms)`` of SciFact test with the default analyser."""
    from nlpcurriculum.retrieval.text import Analyzer

    an = Analyzer()
    return an.batch(scifact.documents()), an.batch(scifact.queries["text"].tolist())
