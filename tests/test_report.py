import json

from nlpcurriculum import registry, report


def test_report_lists_every_item_and_embeds_results_offline(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "metrics").mkdir()
    (tmp_path / "plots").mkdir()
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    fig.savefig(tmp_path / "plots" / "bpe.png")
    (tmp_path / "metrics" / "x.json").write_text(json.dumps({"items": {
        "tokenization-and-embeddings/2": {
            "metrics": {"tokens_per_byte": 0.25},
            "findings": [{"claim": "ids equal <tiktoken>", "metric": "mismatches", "value": 0.0,
                          "passed": True, "threshold": 0.0, "kind": "invariant"},
                         {"claim": "faster", "metric": "ratio", "value": 0.5, "passed": False},
                         {"claim": "fewer tokens", "metric": "gain", "value": 0.125,
                          "passed": True, "threshold": 0.05, "kind": "finding", "n": 5,
                          "se": 0.0123}],
            "figures": ["plots/bpe.png"],
        }}}))
    runs = {"tokenization-and-embeddings/2": {"run_id": "abc", "experiment_id": "7", "stage": "s"}}
    views = report.collect(tmp_path, runs, "http://127.0.0.1:5000")
    page = report.render(views)
    for it in registry.items():
        assert f"id='{it.id}'" in page
    assert "data:image/png;base64," in page
    assert "http://127.0.0.1:5000/#/experiments/7/runs/abc" in page
    assert "ids equal &lt;tiktoken&gt;" in page
    assert ">PASS<" in page and ">FAIL<" in page
    assert "1 of 2 expected findings pass; 1 of 1 invariants hold" in page
    assert "invariant (holds by construction)" in page
    assert "<td class=num>5</td><td class=num>0.0123</td><td class=num>0.05</td>" in page
    assert "<script" not in page and "src='http" not in page and 'src="http' not in page
