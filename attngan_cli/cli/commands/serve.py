"""`attngan serve`: a local web page and HTTP API over trained checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from attngan_cli.cli.commands.common import command
from attngan_cli.cli.commands.options import Device, Precision, Quiet
from attngan_cli.cli.flags import FLAGS
from attngan_cli.core.errors import InputError

log = logging.getLogger(__name__)

@command(flags=FLAGS["serve"])
def serve(
    checkpoints: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", "-c", help="A generator checkpoint file or a train run directory; repeat for several "
        "models (chosen in the page).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on: 127.0.0.1 (this machine only) or "
                                      "0.0.0.0 (every network, no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port (0: a free one, printed).")] = 8000,
    max_n: Annotated[int, typer.Option("--max-n", help="Most images one request may ask for.")] = 8,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most images in one forward of a model; "
                                           "requests of several clients share it (at least --max-n; 1 with "
                                           "--max-n 1: one request at a time).")] = 16,
    queue: Annotated[int, typer.Option("--queue", help="Requests waiting per model; more get 503 (busy).")] = 32,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may wait for its images "
                                           "before it gets 504.")] = 60.0,
    batch_wait_ms: Annotated[float, typer.Option("--batch-wait-ms", help="After a request arrives, how long "
                                                 "to wait for others to batch with it.")] = 5.0,
    max_chars: Annotated[int, typer.Option("--max-chars", help="Longest caption accepted, in characters.")] = 1000,
    top: Annotated[int, typer.Option("--top", "-k", help="Words shown per attention model.")] = 5,
    device: Device = "auto",
    precision: Precision = "auto",
    quiet: Quiet = False,
) -> None:
    """Serve a web page and an HTTP API to draw images (and attention maps) from any caption.

    Each checkpoint is loaded once. The page (at the printed address) has a caption box that flags the words
    the model does not know, the seed and number of images, the images of every stage, the attention words
    (click one to see its map) and the model's facts. The API: POST /generate, POST /tokenize, GET /models,
    GET /health, described in /openapi.json. The same seed gives the same images as `attngan sample`.

    Listens on 127.0.0.1 (this machine only) unless --host says otherwise. Ctrl-C stops it. Needs the
    extra: pip install "attngan[serve]".

    Examples:

      attngan serve -c demo/runs/00003-shapes-train

      attngan serve -c runs/00002-cub-train -c runs/00005-cub-train --port 8080 --max-batch 32
    """
    # deferred: keeps `attngan --help` fast, and names the extra when the stack is missing
    from attngan_cli.apps.serve import require_stack

    require_stack()
    from attngan_cli.apps.serve.engine import ServeSettings, check_settings, model_name, serve_model
    from attngan_cli.apps.serve.server import is_loopback
    from attngan_cli.apps.serve.server import serve as run_server
    from attngan_cli.core.device import resolve_device
    from attngan_cli.inference.pipeline import load_generator

    if not checkpoints:
        raise InputError("no checkpoint given: attngan serve -c CHECKPOINT (a train run directory or a file)")
    settings = check_settings(ServeSettings(max_n=max_n, max_batch=max_batch, queue=queue, timeout_s=timeout,
                                            batch_wait_ms=batch_wait_ms, max_chars=max_chars, top=top,
                                            precision=precision))
    dev = resolve_device(device)
    models, taken = [], set()
    for path in checkpoints:
        bundle = load_generator(path, dev, need_vocab=True)
        name = model_name(path, taken)
        taken.add(name)
        m = serve_model(name, bundle, precision)
        log.info("model %s: %s, %s, step %s, %d words, %s on %s", name, m.facts["arch"], m.facts["dataset"] or "?",
                 m.facts["step"], m.vocab_size, m.precision, dev)
        models.append(m)

    def ready(url: str) -> None:
        scope = "this machine only" if is_loopback(host) else "reachable from other machines"
        typer.echo(f"attngan serve: {url} ({scope}; Ctrl-C to stop)")

    run_server(models, settings, host=host, port=port, on_ready=ready)
