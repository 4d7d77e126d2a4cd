"""Statistics: entropy, normalized entropy, mutual information and Spearman's rho, by hand and
against scipy."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from nlpcurriculum.metrics.stats import entropy, mutual_information_bits, normalized_entropy, spearman


def test_entropy_by_hand_and_against_scipy():
    assert float(entropy(torch.tensor([0.5, 0.5]))) == pytest.approx(math.log(2))
    assert float(entropy(torch.tensor([1.0, 0.0, 0.0]))) == 0.0  # 0 log 0 = 0, no nan
    probs = torch.rand(5, 7, generator=torch.Generator().manual_seed(0)) ** 3
    probs[0, :3] = 0  # some zeros
    probs /= probs.sum(-1, keepdim=True)
    h = entropy(probs)
    assert h.shape == (5,)
    np.testing.assert_allclose(h.numpy(), sps.entropy(probs.numpy(), axis=-1), rtol=1e-6)
    assert (h <= math.log(7) + 1e-6).all()


def test_normalized_entropy_and_mutual_information_on_hand_cases():
    a = torch.tensor([0, 0, 1, 1])
    assert math.isclose(mutual_information_bits(a, a), 1.0)  # a determines b: H = 1 bit
    assert math.isclose(mutual_information_bits(a, torch.tensor([0, 1, 0, 1])), 0.0, abs_tol=1e-12)
    assert math.isclose(normalized_entropy(torch.tensor([5, 5, 5, 5])), 1.0)
    assert normalized_entropy(torch.tensor([7, 0, 0])) == 0.0
    assert normalized_entropy(torch.tensor([3])) == 1.0  # one bin counts as uniform
    # two of four bins used equally: log 2 / log 4 = 1/2
    assert math.isclose(normalized_entropy(torch.tensor([2, 0, 2, 0])), 0.5)


def test_mutual_information_matches_its_definition():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 3, (400,), generator=g)
    b = (a + torch.randint(0, 2, (400,), generator=g)) % 4  # b depends on a, with noise
    joint = np.zeros((3, 4))
    for i, j in zip(a.tolist(), b.tolist()):
        joint[i, j] += 1
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    # I(A; B) = H(A) + H(B) - H(A, B), in bits
    h = lambda p: -sum(x * math.log2(x) for x in p.ravel() if x > 0)
    assert mutual_information_bits(a, b) == pytest.approx(h(pa) + h(pb) - h(joint), abs=1e-12)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # scipy: nan, as ours
def test_spearman_by_hand_and_against_scipy_with_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))  # 0.8
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties: average ranks
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 12))
        x, y = rng.integers(0, 4, n).astype(float), rng.normal(size=n).round(1)  # many ties
        ref = sps.spearmanr(x, y).statistic
        ours = spearman(x.tolist(), y.tolist())
        assert (math.isnan(ours) and math.isnan(ref)) or ours == pytest.approx(ref, abs=1e-12)
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2], [1, 2, 3])


def test_spearman_ordinal_ties_agree_without_ties_and_differ_with_them():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=9).tolist(), rng.normal(size=9).tolist()  # no ties
    assert spearman(x, y, ties="ordinal") == spearman(x, y)
    # with ties, ordinal ranks break them by position: [1, 1, 2] ranks as [0, 1, 2]
    assert spearman([1, 1, 2], [1, 2, 3], ties="ordinal") == pytest.approx(1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(sps.spearmanr([1, 1, 2], [1, 2, 3]).statistic)
    assert spearman([1, 1, 2], [1, 2, 3]) < 1.0
    with pytest.raises(ValueError, match="ties"):
        spearman(x, y, ties="dense")
