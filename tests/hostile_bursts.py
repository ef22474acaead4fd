"""Hostile webcam bursts: what a tampered browser could send instead of the "hold to record"
widget's list of JPEG data URLs, with what CNN Lab must do with each.

``BURST_TRICKS``: name → ``BurstTrick(make, expect)``. ``make(limits)`` builds the payload
(the JSON value the widget's trigger carries) for the ``Budgets`` in force; ``expect`` is
``refused(*words)`` (the whole burst is refused with a learner's message holding one of
``words``, nothing kept) or ``skipped(kept, *words)`` (the burst is read; ``kept`` frames
are decoded and every other frame is skipped with a message holding one of ``words``).
``tests/test_burst.py`` feeds each to ``cnnlib.uploads.burst`` (the real parser and the
decoding sandbox).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from cnnlib.core.budgets import Budgets
from tests.hostile_corpus import REFUSED, SKIPPED, Expect, progressive_jpeg_many_scans
from tests.uploads import encode, photo, png_declaring


@dataclass(frozen=True)
class BurstTrick:
    make: Callable[[Budgets], object]
    expect: Expect
    #: Frames the burst keeps (``skipped`` tricks).
    kept: int = 0


def refused(*words: str) -> tuple[Expect, int]:
    return Expect(REFUSED, words), 0


def skipped(kept: int, *words: str) -> tuple[Expect, int]:
    return Expect(SKIPPED, words), kept


def data_url(raw: bytes, mime: str = "image/jpeg") -> str:
    """``raw`` as the widget sends a frame: ``data:<mime>;base64,<base64 of raw>``."""
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def frame(size=(64, 48), quality: int = 85) -> str:
    """One good frame, as the widget makes it: a small JPEG data URL."""
    return data_url(encode(photo(size), "JPEG", quality=quality))


def _trick(make: Callable[[Budgets], object], outcome: tuple[Expect, int]) -> BurstTrick:
    return BurstTrick(make, outcome[0], outcome[1])


def _big_text(limits: Budgets) -> str:
    """One frame whose base64 text alone is over the burst's byte cap."""
    return "data:image/jpeg;base64," + "A" * (limits.burst_bytes * 4 // 3 + 8)


def _many_big_frames(limits: Budgets) -> list[str]:
    """Frames each under the cap, together over it (random bytes: they do not compress)."""
    import os

    each = limits.burst_bytes // 4 + 1
    return [data_url(os.urandom(each)) for _ in range(5)]


BURST_TRICKS: dict[str, BurstTrick] = {
    "a dict instead of a list": _trick(lambda b: {"frames": [frame()]}, refused("dict")),
    "a string instead of a list": _trick(lambda b: frame(), refused("str")),
    "a number instead of a list": _trick(lambda b: 42, refused("int")),
    "an empty list": _trick(lambda b: [], refused("no photos")),
    "one frame more than the cap": _trick(
        lambda b: [frame((8, 8))] * (b.burst_frames + 1), refused("more than the")
    ),
    "a million tiny frames": _trick(lambda b: ["x"] * 1_000_000, refused("more than the")),
    "one frame over the byte cap": _trick(lambda b: [_big_text(b)], refused("the most one")),
    "frames over the byte cap together": _trick(_many_big_frames, refused("the most one")),
    "a number as a frame": _trick(lambda b: [frame(), 7], refused("photo 2 as int")),
    "a list as a frame": _trick(lambda b: [[frame()]], refused("photo 1 as list")),
    "a dict as a frame": _trick(lambda b: [{"image": frame()}], refused("photo 1 as dict")),
    "null as a frame": _trick(lambda b: [None], refused("photo 1 as NoneType")),
    "an HTML data URL": _trick(
        lambda b: [data_url(b"<script>alert(1)</script>", "text/html")], refused("not a JPEG")
    ),
    "an SVG data URL": _trick(
        lambda b: [data_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")],
        refused("not a JPEG"),
    ),
    "a javascript: URL": _trick(lambda b: ["javascript:alert(1)"], refused("not a JPEG")),
    "an http URL": _trick(lambda b: ["https://evil.example/cat.jpg"], refused("not a JPEG")),
    "a data URL without base64": _trick(
        lambda b: ["data:image/jpeg,%FF%D8%FF"], refused("not a JPEG")
    ),
    "damaged base64": _trick(
        lambda b: ["data:image/jpeg;base64,/9j/4AAQ!!!not base64***"], refused("damaged base64")
    ),
    "base64 with a newline": _trick(
        lambda b: [frame()[:40] + "\n" + frame()[40:]], refused("damaged base64")
    ),
    "an empty frame": _trick(lambda b: ["data:image/jpeg;base64,"], refused("empty")),
    "text in a JPEG data URL": _trick(
        lambda b: [frame(), data_url(b"Dear teacher, this is not a photo."), frame()],
        skipped(2, "not an image"),
    ),
    "a truncated JPEG": _trick(
        lambda b: [data_url(encode(photo((200, 150)), "JPEG", quality=95)[:1500]), frame()],
        skipped(1, "damaged or truncated"),
    ),
    "a PNG bomb's header": _trick(
        lambda b: [data_url(png_declaring(30000, 30000), "image/png")], skipped(0, "pixels")
    ),
    "a frame far bigger than the training size": _trick(
        lambda b: [data_url(encode(photo((1200, 900)), "JPEG", quality=30))],
        skipped(0, "pixels"),
    ),
    "a progressive JPEG of 2,000 scans": _trick(
        lambda b: [data_url(progressive_jpeg_many_scans(scans=2000))],
        skipped(0, "pixels"),  # refused from its header: a frame is small
    ),
    "a PNG declared as a JPEG": _trick(
        lambda b: [data_url(encode(photo()), "image/jpeg")],
        skipped(1),
    ),
}


#: Live frames ({"n": number, "image": data URL}) that must be refused: name → (payload,
#: words of the refusal).
LIVE_TRICKS: dict[str, tuple[object, str]] = {
    "a list": ([frame()], "form"),
    "a bare data URL": (frame(), "form"),
    "an extra key": ({"n": 1, "image": frame(), "html": "<b>x</b>"}, "form"),
    "no number": ({"image": frame()}, "form"),
    "a text number": ({"n": "1", "image": frame()}, "number"),
    "a boolean number": ({"n": True, "image": frame()}, "number"),
    "a float number": ({"n": 1.5, "image": frame()}, "number"),
    "number zero": ({"n": 0, "image": frame()}, "number"),
    "a huge number": ({"n": 10**40, "image": frame()}, "number"),
    "two frames": ({"n": 1, "image": [frame(), frame()]}, "as list"),
    "an SVG": ({"n": 1, "image": data_url(b"<svg/>", "image/svg+xml")}, "not a JPEG"),
    "over the byte cap": ({"n": 1, "image": "data:image/jpeg;base64," + "A" * 400_000}, "most"),
}
