"""Which way up a video or a photo is: ``crct track --rotate``, ``crct align --rotate`` and
``Tracker(rotate=...)``.

A phone's video usually says how to turn it (the display matrix, applied as frames are decoded:
:mod:`crct_cli.io.video`), but a file re-encoded without that tag, a camera mounted on its side
or a screen recording turned by hand shows the face lying on its side, and MTCNN, BT and FLL,
trained on faces within 45 degrees of upright, then find no face, or points that all fail.
``--rotate 90`` turns every frame a quarter clockwise before anything reads it (the ``rotate``
tag's sense and FFmpeg's ``transpose=clock``); ``--rotate auto`` looks at the first frames in
all four quarter turns and keeps the one in which the detector finds a face most surely.

The detector's certainty is the logit of its best face's probability: MTCNN's probabilities
crowd against 1 (an upright face mostly 0.999+, a face lying on its side that it still takes, or a
face-like pattern, 0.90-0.999), and the logit spreads them apart (a mean of 7.9-13.1 over 12
frames of the shared videos upright, 0.2-4.8 in the other turns: docs/benchmarks.md). A turn is
taken over the frames as decoded only when its mean over the sampled frames is :data:`MARGIN`
higher, so a face tilted about 45 degrees, which reads as well one quarter turn as the other,
keeps the video as it came. The look ends early once one turn is :data:`DECISIVE` ahead of
every other (an upright face: two frames instead of six), and goes on while no turn shows a
face (a face that comes into view late), up to :data:`SEARCH_FRAMES`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from crct_cli.errors import OptionError
from crct_cli.io.video import Frame, apply_rotation

#: The quarter turns ``--rotate`` takes, clockwise degrees.
ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)
#: ``--rotate auto``: the quarter turn is chosen from the first frames.
AUTO = "auto"
#: Mean logit a quarter turn must find faces by above the frames as decoded to be taken.
MARGIN = 2.0
#: The look ends early once one turn's mean leads every other's by this much ...
DECISIVE = 6.0
#: ... over at least this many frames.
DECISIVE_AFTER = 2
#: The certainty of a face found for sure (a probability of 1 - 1e-6; MTCNN's float32 1.0).
_MOST = math.log((1 - 1e-6) / 1e-6)
#: ``auto``: every this many frames is looked at ...
SAMPLE_EVERY = 10
#: ... over the first this many (under two seconds of most video) ...
SAMPLE_SPAN = 51
#: ... and then every this many (about a second), while no face has been seen ...
SEARCH_EVERY = 30
#: ... up to this many frames read (about 20 s), ...
SEARCH_FRAMES = 600
#: ... until this many of the frames looked at showed a face in some turn ...
SAMPLE_COUNT = 6
#: ... and, reading frames that cannot be read again, no more held than this many bytes.
SAMPLE_BYTES = 200 * 2**20


def parse_rotate(value: Any) -> int | str:
    """``--rotate`` / ``rotate``: 0, 90, 180 or 270 (clockwise degrees), or ``"auto"``."""
    given = value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            value = int(text)
        except ValueError:
            raise _rotate_error(given) from None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value not in ROTATIONS:
        raise _rotate_error(given)
    return int(value)


def _rotate_error(value: Any) -> OptionError:
    return OptionError(
        "rotate",
        f"must be 0, 90, 180, 270 (degrees clockwise) or 'auto', got {value!r}",
        cli=f"must be 0, 90, 180, 270 or auto, got {value!r}",
    )


def turn(image: np.ndarray, clockwise: int) -> np.ndarray:
    """``image`` turned ``clockwise`` degrees (a multiple of 90) clockwise."""
    return apply_rotation(image, -clockwise)


def turned_size(width: int, height: int, clockwise: int) -> tuple[int, int]:
    """A ``width`` x ``height`` frame's size once turned ``clockwise`` degrees."""
    return (height, width) if clockwise % 180 else (width, height)


def turn_points(points: Any, clockwise: int, width: int, height: int) -> np.ndarray:
    """Points of a ``width`` x ``height`` picture, where they lie once the picture is turned
    ``clockwise`` degrees by :func:`turn` (pixel centres counted from 0, so a pixel's centre
    lands on its own pixel's centre)."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    quarter = (clockwise // 90) % 4
    if quarter == 1:
        x, y = height - 1 - y, x
    elif quarter == 2:
        x, y = width - 1 - x, height - 1 - y
    elif quarter == 3:
        x, y = y, width - 1 - x
    return np.stack([x, y], axis=-1)


def unturn_points(points: Any, clockwise: int, width: int, height: int) -> np.ndarray:
    """Points read in a ``width`` x ``height`` picture turned ``clockwise`` degrees, back in
    that picture's own pixels (the inverse of :func:`turn_points`)."""
    turned_width, turned_height = turned_size(width, height, clockwise)
    return turn_points(points, (360 - clockwise) % 360, turned_width, turned_height)


def turn_frames(frames: Iterator[Frame], clockwise: int) -> Iterator[Frame]:
    """``frames`` turned ``clockwise`` degrees (unchanged for 0)."""
    if clockwise % 360 == 0:
        yield from frames
        return
    for frame in frames:
        yield Frame(frame.index, frame.time, turn(frame.image, clockwise))


def certainty(detect: Callable[[np.ndarray], Sequence[Any]], image: np.ndarray) -> float:
    """How surely ``detect`` finds a face in ``image``: its best face's logit, 0 for none."""
    return certainty_of(detect(image))


def certainty_of(found: Sequence[Any]) -> float:
    """:func:`certainty` of the detections ``found`` in an image."""
    best = max((float(d.score) for d in found), default=0.0)
    if not best > 0.5:
        return 0.0
    return min(math.log(best / max(1.0 - best, 1e-12)), _MOST)


class TurnVote:
    """The evidence for each quarter turn so far: the mean certainty in each turn over the
    frames looked at in which some turn shows a face (a frame with no face in any turn, before
    a face comes into view, says nothing)."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(ROTATIONS, 0.0)
        self.frames = 0  #: frames looked at that showed a face in some turn

    def look(self, image: np.ndarray, detect: Callable[[np.ndarray], Sequence[Any]]) -> None:
        self.add({angle: certainty(detect, turn(image, angle)) for angle in ROTATIONS})

    def add(self, seen: dict[int, float]) -> None:
        """One frame's certainty in each quarter turn."""
        if max(seen.values()) > 0:
            self.frames += 1
            for angle, value in seen.items():
                self.sums[angle] += value

    def means(self) -> dict[int, float]:
        return {angle: total / max(self.frames, 1) for angle, total in self.sums.items()}

    @property
    def settled(self) -> bool:
        """:data:`SAMPLE_COUNT` frames with a face, or one turn :data:`DECISIVE` ahead of every
        other over :data:`DECISIVE_AFTER` of them: more would not change the choice."""
        if self.frames >= SAMPLE_COUNT:
            return True
        first, second = sorted(self.means().values(), reverse=True)[:2]
        return self.frames >= DECISIVE_AFTER and first - second >= DECISIVE

    def choice(self) -> tuple[int, bool]:
        """The turn, and whether any face was seen (0 where nothing beats the frames as they
        are by :data:`MARGIN`, or no face was seen)."""
        if self.frames == 0:
            return 0, False
        means = self.means()
        best = max(ROTATIONS, key=lambda angle: (means[angle], angle == 0))
        if best != 0 and means[best] - means[0] < MARGIN:
            return 0, True
        return best, True


def choose_rotation(
    images: Sequence[np.ndarray], detect: Callable[[np.ndarray], Sequence[Any]]
) -> tuple[int, bool]:
    """The clockwise quarter turn in which ``detect`` finds faces in ``images`` most surely,
    and whether it found a face in any turn at all (:class:`TurnVote`)."""
    vote = TurnVote()
    for image in images:
        vote.look(image, detect)
        if vote.settled:
            break  # the rest would not change it
    return vote.choice()


def orient_still(
    image: np.ndarray, detect: Callable[[np.ndarray], Sequence[Any]]
) -> tuple[int, list[Any]]:
    """``auto``'s turn for one picture, as :func:`choose_rotation` chooses it, and the faces
    ``detect`` found in the picture so turned. A face found as surely as the picture lies
    (above the cap less :data:`MARGIN`) cannot be beaten by another turn, so the other three
    are not looked at: one detection, not four, for most upright photos a camera takes."""
    found = {0: list(detect(image))}
    if certainty_of(found[0]) > _MOST - MARGIN:
        return 0, found[0]
    for angle in ROTATIONS[1:]:
        found[angle] = list(detect(turn(image, angle)))
    vote = TurnVote()
    vote.add({angle: certainty_of(faces) for angle, faces in found.items()})
    angle = vote.choice()[0]
    return angle, found[angle]


def _looked_at(count: int) -> bool:
    """Whether the stream's frame ``count`` (from 0) is looked at: every :data:`SAMPLE_EVERY`
    th of the first :data:`SAMPLE_SPAN`, then every :data:`SEARCH_EVERY` th."""
    if count < SAMPLE_SPAN:
        return count % SAMPLE_EVERY == 0
    return count % SEARCH_EVERY == 0


def look_for_turn(
    frames: Iterator[Frame], detect: Callable[[np.ndarray], Sequence[Any]], hold: bool = True
) -> tuple[int, Iterator[Frame]]:
    """``auto``'s turn for a stream: its frames read until the choice is settled, or
    :data:`SEARCH_FRAMES` are read with no face in any turn yet (a face that comes into view
    later is waited for). ``hold``: the frames read are kept (at most :data:`SAMPLE_BYTES`, where
    the look stops too) and the whole stream is given back, those frames first; else the
    stream is given back where the look left it (a file is read again from its start)."""
    vote = TurnVote()
    held: list[Frame] = []
    size = 0
    for count, frame in enumerate(frames):
        if hold:
            held.append(frame)
            size += frame.image.nbytes
        if _looked_at(count):
            vote.look(frame.image, detect)
        if vote.settled or count + 1 >= SEARCH_FRAMES or (hold and size >= SAMPLE_BYTES):
            break
    return vote.choice()[0], itertools.chain(held, frames)
