"""`attngan serve` for real: the command in a subprocess on a free port, its page driven in headless
Chromium (Playwright with Debian's chromium), Ctrl-C, and the command's own errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _sample_fixtures import make_generator_checkpoint
from typer.testing import CliRunner

from attngan_cli.cli import app

REPO = Path(__file__).resolve().parents[3]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_generator_checkpoint(tmp_path_factory.mktemp("serve-e2e") / "G.pt", stages=3)


class Server:
    def __init__(self, ckpt: Path, *args: str) -> None:
        pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
        env = {**os.environ, "PYTHONPATH": str(REPO), "ATTNGAN_AUTO_PRECISION": "fp32", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "attngan_cli", "serve", "-c", str(ckpt), "--port", "0",
                                      "--device", "cpu", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        if not line or "http://" not in line[0]:
            self.proc.kill()
            raise AssertionError(f"the server did not start: {line} {self.proc.stderr.read()}")
        self.first_line = line[0]
        self.url = line[0].split()[2]

    def stop(self, signal_it: bool = True) -> tuple[int, str]:
        """Ctrl-C (unless sent already: a second one forces uvicorn out) and wait for the end."""
        if signal_it:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, err


@pytest.mark.slow  # about 20 s: a server process (torch) and a browser start
def test_page_in_headless_chromium(ckpt) -> None:
    """Type a caption, press the button, see the images and the attention words; Ctrl-C stops the server
    cleanly."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium browser installed: apt-get install -y chromium (README, Tests)")
    server = Server(ckpt)
    try:
        assert server.url.startswith("http://127.0.0.1:") and "this machine only" in server.first_line
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            assert "attngan" in page.locator("#facts").inner_text()
            page.fill("#caption", "this bird is red zzz")
            page.wait_for_selector(".tok.unknown", timeout=10_000)
            assert page.locator(".tok.unknown").inner_text() == "zzz"
            assert page.locator(".tok:not(.unknown)").count() == 4
            page.fill("#n", "2")
            page.fill("#seed", "3")
            page.click("#generate")
            page.wait_for_selector("#images .sample img", timeout=30_000)
            imgs = page.locator("#images img")
            assert imgs.count() == 2 * 3  # 2 samples x 3 stages
            assert all(imgs.nth(i).evaluate("e => e.complete && e.naturalWidth > 0") for i in range(imgs.count()))
            words = page.locator("#attention .word")
            assert words.count() == 2 * 4  # 2 attention models, top-5 of a 4-word caption
            labels = words.evaluate_all("els => els.map(e => e.dataset.index + ':' + e.dataset.word)")
            assert sorted(labels) == sorted(["0:this", "1:bird", "2:is", "3:red"] * 2)
            first_map = page.locator("#attention .map").first.get_attribute("src")
            assert first_map.startswith("data:image/png;base64,")
            words.nth(1).click()
            assert page.locator("#attention .map").first.get_attribute("src") != first_map
            assert page.locator("#figure").evaluate("e => e.naturalWidth > 0")
            assert "zzz" in page.locator("#warnings").inner_text()
            page.fill("#caption", "zzz")
            page.click("#generate")
            page.wait_for_selector("#error:not([hidden])", timeout=10_000)
            assert "none of the words" in page.locator("#error").inner_text()
            assert not errors, errors
            browser.close()
    finally:
        code, err = server.stop()
    assert code == 130 and "Traceback" not in err and "stopped" in err, err


def test_port_in_use_is_named() -> None:
    pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")
    from attngan_cli.apps.serve.server import bind
    from attngan_cli.core.errors import InputError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=f"--port {port} is in use on 127.0.0.1"):
            bind("127.0.0.1", port)


def test_missing_stack_names_the_extra(monkeypatch, ckpt) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    result = CliRunner().invoke(app, ["serve", "-c", str(ckpt)])
    assert result.exit_code == 1
    assert 'needs fastapi (not installed), the web stack of the extra \'serve\': pip install "attngan[serve]"' in \
        " ".join(result.output.split())


def test_command_checks_its_options_first(ckpt) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "-c", str(ckpt), "--max-batch", "2"])
    assert result.exit_code == 1 and "--max-batch (max_batch) must be >= max_n (8)" in " ".join(result.output.split())
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1 and "no checkpoint given: attngan serve -c CHECKPOINT" in result.output
    result = runner.invoke(app, ["serve", "-c", str(ckpt), "--port", "70000"])
    assert result.exit_code == 1 and "--port must be between 0 and 65535, got 70000" in result.output


def test_loopback_hosts() -> None:
    pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")
    from attngan_cli.apps.serve.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


@pytest.mark.slow  # about 20 s each: a server process starts (torch)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_the_server_cleanly(ckpt, sig, code) -> None:
    """A request in flight is answered, then the process ends with 130 (Ctrl-C) or 143 (SIGTERM), as every
    attngan command, and no traceback."""
    httpx = pytest.importorskip("httpx")
    server = Server(ckpt, "--batch-wait-ms", "300")
    try:
        assert httpx.get(server.url + "health", timeout=10).json()["status"] == "ok"
        answer: list = []
        t = threading.Thread(target=lambda: answer.append(httpx.post(
            server.url + "generate", json={"caption": "this bird is red", "n": 4}, timeout=30)))
        t.start()
        deadline = time.monotonic() + 10
        while not httpx.get(server.url + "health", timeout=10).json()["models"]["G"]["queued"]:
            assert time.monotonic() < deadline
        server.proc.send_signal(sig)  # while the request waits for its batch
        t.join(30)
    finally:
        returncode, err = server.stop(signal_it=False)
    assert answer and answer[0].status_code == 200 and len(answer[0].json()["samples"]) == 4
    assert returncode == code and "Traceback" not in err and "stopped" in err, err
