"""``cti speech``: the speech models (Vosk)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cti_server.cli.common import Group


@click.group(cls=Group)
def speech() -> None:
    """Speech models (Vosk) for spoken menus and transcription."""


@speech.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--word", "words", multiple=True, help="Check that the model knows this word.")
def speech_check(model: Path, words: tuple[str, ...]) -> None:
    """Load a Vosk model and decode a second of audio with it; exit 1 if it cannot serve."""
    from cti_server.speech.decoder import CALL_RATE, StreamDecoder, model_rate
    from cti_server.speech.models import load_model

    if not (model / "am").is_dir() and not (model / "final.mdl").is_file():
        click.echo(f"cti speech check: {model} is not a Vosk model directory (no am/)", err=True)
        sys.exit(1)
    try:
        loaded = load_model(model)
        rate = model_rate(model)
        decoder = StreamDecoder(loaded, rate, "customer")
        decoder.feed(b"\0" * 2 * CALL_RATE)
        decoder.finish()
    except Exception as exc:  # any failure means the model cannot serve
        click.echo(f"cti speech check: {model}: {exc}", err=True)
        sys.exit(1)
    unknown = [w for w in words if loaded.vosk_model_find_word(w) == -1]
    click.echo(f"{model}: ok, features at {rate} Hz")
    if unknown:
        click.echo(f"not in the vocabulary: {', '.join(unknown)}", err=True)
        sys.exit(1)
