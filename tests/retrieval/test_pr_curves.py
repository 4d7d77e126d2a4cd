"""Precision-recall curves: the hand-worked example, and parity with pytrec_eval (ties included)."""

import numpy as np
import pytest
import pytrec_eval

from nlpcurriculum.retrieval.pr_curves import (RECALL_LEVELS, average_precision, interpolated_precision,
                                               precision_recall_at_ranks)


def test_hand_worked_example():
    qrels = {"q": {"d1": 1, "d3": 1}}
    run = {"q": {"d2": 3.0, "d3": 2.0, "d1": 1.0}}
    P, R = precision_recall_at_ranks(run, qrels, 3)
    assert P[0] == pytest.approx([0, 1 / 2, 2 / 3]) and R[0] == pytest.approx([0, 0.5, 1.0])
    assert average_precision(run, qrels, 3)[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert interpolated_precision(run, qrels)[0] == pytest.approx(np.full(11, 2 / 3))


def _random_run(seed, n_queries=40, n_docs=60, depth=25):
    """Judged and retrieved documents at random, scores rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        judged = rng.choice(n_docs, size=rng.integers(1, 8), replace=False)
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(0, 3)) for d in judged}
        if not any(s > 0 for s in qrels[f"q{q}"].values()):
            qrels[f"q{q}"][f"d{judged[0]}"] = 1
        got = rng.choice(n_docs, size=rng.integers(0, depth), replace=False)
        run[f"q{q}"] = {f"d{d}": float(np.round(rng.random(), 1)) for d in got}
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_pytrec_eval(seed):
    """P_k, recall_k, iprec_at_recall and map_cut of trec_eval agree with ours to 1e-12."""
    run, qrels = _random_run(seed)
    depth = 20
    ks = ",".join(str(k) for k in range(1, depth + 1))
    ev = pytrec_eval.RelevanceEvaluator(qrels, {f"P.{ks}", f"recall.{ks}", "iprec_at_recall", f"map_cut.{depth}"})
    ref = ev.evaluate(run)
    P, R = precision_recall_at_ranks(run, qrels, depth)
    ip = interpolated_precision(run, qrels)
    ap = average_precision(run, qrels, depth)
    for i, q in enumerate(qrels):
        r = ref[q]
        assert P[i] == pytest.approx([r[f"P_{k}"] for k in range(1, depth + 1)], abs=1e-12)
        assert R[i] == pytest.approx([r[f"recall_{k}"] for k in range(1, depth + 1)], abs=1e-12)
        # an empty retrieved list: trec_eval divides 0 by 0 at recall 0 (NaN), ours says 0
        expected = np.nan_to_num([r[f"iprec_at_recall_{lv:.2f}"] for lv in RECALL_LEVELS])
        assert ip[i] == pytest.approx(expected, abs=1e-12)
        assert ap[i] == pytest.approx(r[f"map_cut_{depth}"], abs=1e-12)


def test_interpolated_precision_never_rises_with_recall():
    run, qrels = _random_run(3)
    ip = interpolated_precision(run, qrels)
    assert (np.diff(ip, axis=1) <= 1e-12).all()
