"""The sampler dashboard: its table function, its CLI errors, and the real app in headless chromium.

The browser test starts ``python -m nlpcurriculum.apps.sampler_dashboard`` on 127.0.0.1 at a free
port with a tiny model and tokenizer built in ``tmp_path``, and drives it with playwright and
Debian's chromium (``scripts/setup.sh --dev`` installs it; no ``playwright install``).
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from nlpcurriculum.apps.sampler_dashboard import render_page, render_view_html, sampler_view
from nlpcurriculum.decoding.samplers import SamplerConfig
from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.tokenizers import TokenizerSpec, eos_id, train_tokenizer
from nlpcurriculum.training.checkpoint import save_checkpoint

CHROMIUM = "/usr/bin/chromium"
SRC = Path(__file__).resolve().parents[2] / "src"
TEXT = ["The quick brown fox jumps over the lazy dog. " * 3, "A function returns a value to the caller. " * 3,
        "The interpreter reads the module and runs it. " * 3]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny untrained model (large init: peaked, varied logits) and a BPE tokenizer, on disk."""
    root = tmp_path_factory.mktemp("dash")
    tok = train_tokenizer(TokenizerSpec(kind="bpe", vocab_size=300), TEXT)
    tok.save(root / "tokenizer.json")
    torch.manual_seed(0)
    cfg = llama_like("tiny", vocab_size=tok.vocab_size, max_seq_len=48, n_layers=2, init_std=0.3)
    model = build_model(cfg).eval()
    save_checkpoint(root / "model.pt", model=model, model_config=asdict(cfg))
    return root, model, tok


def test_sampler_view_table(artifacts):
    _, model, tok = artifacts
    stop = eos_id(tok)
    view = sampler_view(model, tok, "The quick", SamplerConfig(temperature=0.7, top_k=5), 10, seed=1,
                        top_n=4, stop_id=stop)
    assert 1 <= len(view.steps) <= 10 and view.sample_ids == view.output.tokens[0]
    for st in view.steps:
        assert sum(r.chosen for r in st.rows) == 1 and st.kept == 5
        assert len(st.rows) in (4, 5)  # the chosen token is added when outside the top 4
        after = [r.p_after for r in st.rows]
        assert all(0 <= p <= 1 for p in after) and st.entropy_after <= st.entropy_before + 1e-6
    again = sampler_view(model, tok, "The quick", SamplerConfig(temperature=0.7, top_k=5), 10, seed=1,
                         top_n=4, stop_id=stop)
    assert again.sample_ids == view.sample_ids  # seeded
    greedy = sampler_view(model, tok, "The", SamplerConfig(temperature=0), 5, stop_id=stop)
    assert all(st.entropy_after == 0 and st.kept == 1 for st in greedy.steps)
    html = render_view_html(view)
    assert html.count('class="cand"') == sum(len(s.rows) for s in view.steps) and "sampler-table" in html
    assert render_page([view, greedy]).count("sampler-view") == 2
    with pytest.raises(ValueError, match="max_new_tokens"):
        sampler_view(model, tok, "x", SamplerConfig(), 48)


def test_empty_prompt_is_a_message_not_a_sample(artifacts):
    """An empty prompt used to start from the end-of-text id and show `<|endoftext|>` plus
    whatever the model made of it; now the dashboard shows this message instead."""
    _, model, tok = artifacts
    for stop in (eos_id(tok), None):
        with pytest.raises(ValueError, match=r"^the prompt is empty: type a few words"):
            sampler_view(model, tok, "", SamplerConfig(), 4, stop_id=stop)


def test_cli_reports_missing_files(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "nlpcurriculum.apps.sampler_dashboard",
                           "--model", str(tmp_path / "nope.pt")], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "model checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the dashboard did not answer at {url} within {timeout} s")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dashboard_in_headless_chromium(artifacts, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/setup.sh --dev` (it installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    root, _, _ = artifacts
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "PYTHONPATH": str(SRC), "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nlpcurriculum.apps.sampler_dashboard", "--model", str(root / "model.pt"),
         "--tokenizer", str(root / "tokenizer.json"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        _wait_http(url, proc, 90)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)  # generous: the test machine may be shared
                page.goto(url)
                page.locator("#prompt textarea").fill("The quick")
                page.locator("#seed input").fill("3")
                page.locator("#n_tokens input[type=number]").fill("6")
                page.locator("#n_tokens input[type=number]").press("Enter")
                page.locator("#generate").click()
                table = page.locator("#table table.sampler-table")
                expect(table).to_be_visible()
                expect(page.locator("#sample textarea")).not_to_have_value("")
                assert page.locator("#sample textarea").input_value().startswith("The quick")
                assert table.locator("tbody > tr > td[rowspan]").count() == 6  # one block per step
                first = table.inner_text()
                assert "T=1" in page.locator("#table .sampler-view").get_attribute("data-settings")

                # temperature 0 (argmax): every shown distribution collapses to a one-hot
                page.locator("#temperature input[type=number]").fill("0")
                page.locator("#temperature input[type=number]").press("Enter")
                page.locator("#generate").click()
                expect(page.locator("#table .sampler-view")).to_have_attribute("data-settings", "argmax")
                after = [float(x) for x in page.locator("#table td.p-after").all_inner_texts()]
                assert sorted(set(after)) == [0.0, 1.0] and after.count(1.0) == 6
                assert table.inner_text() != first

                # an empty prompt: a message, and the last sample stays as it was
                shown = page.locator("#sample textarea").input_value()
                page.locator("#prompt textarea").fill("")
                page.locator("#generate").click()
                message = page.locator("#table .sampler-error")
                expect(message).to_be_visible()
                assert message.inner_text().startswith("the prompt is empty: type a few words")
                assert page.locator("#sample textarea").input_value() == shown
                assert "endoftext" not in page.locator("#table").inner_text()
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
