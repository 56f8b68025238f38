"""The multi-track layer's control flow, on a scripted world of moving face boxes.

Frames are tiny arrays whose value is their index. ``World`` knows where each true face is in
every frame and answers the batched network calls the way good networks would: BT follows the
face its box was on, FLL puts the shape on the face its box overlaps, FV accepts points on a
face. Every call is recorded, so the tests can check which network ran how often per frame.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.multi import Face, MultiConfig, MultiTracker, iou
from crct_cli.tracking.tracker import CRCTTracker, TrackerConfig

SIZE = np.array([40.0, 50.0])

_UNIT = np.random.default_rng(11).uniform(0.0, 1.0, (68, 2))
_UNIT = (_UNIT - _UNIT.min(axis=0)) / (_UNIT.max(axis=0) - _UNIT.min(axis=0))


def shape_in(box: np.ndarray) -> np.ndarray:
    return box[:2] + _UNIT * box[2:]


def frame(t: int) -> np.ndarray:
    """Frame ``t`` of a 640x480 video (its number in every pixel: the fakes read it there)."""
    return np.full((480, 640, 3), t, dtype=np.uint8)


def fid(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


def box_at(x: float, y: float = 100.0) -> np.ndarray:
    return np.array([x, y, *SIZE])


@dataclass
class World:
    """True faces per frame: ``paths[name](t)`` is the face's box at t, or None if unseen."""

    paths: dict[str, Any]
    extra_detections: dict[int, list[np.ndarray]] = field(default_factory=dict)
    drift: bool = False  # BT whose face vanished jumps to the nearest face still seen
    faint: dict[str, Any] = field(default_factory=dict)  # name -> t: only a relaxed look sees it
    calls: list[tuple[str, int, int]] = field(default_factory=list)  # (network, frame, batch)

    def faces(self, t: int) -> dict[str, np.ndarray]:
        out = {}
        for name, path in self.paths.items():
            box = path(t)
            if box is not None:
                out[name] = np.asarray(box, dtype=np.float64)
        return out

    def _on(self, t: int, box: np.ndarray, min_iou: float = 0.3) -> np.ndarray | None:
        best = max(self.faces(t).values(), key=lambda b: iou(b, box), default=None)
        return best if best is not None and iou(best, box) >= min_iou else None

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        t = fid(image)
        self.calls.append(("relaxed" if relaxed else "detect", t, 1))
        seen = [b for n, b in self.faces(t).items() if relaxed or not self.faint.get(n, _never)(t)]
        boxes = [*seen, *self.extra_detections.get(t, [])]
        return [Detection(b, b.copy(), 0.99 - 0.01 * i) for i, b in enumerate(boxes)]

    def bt_batch(
        self, prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, states: list[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        t0, t1 = fid(prev), fid(cur)
        self.calls.append(("bt", t1, len(boxes)))
        points = []
        for box in boxes:
            followed = self._on(t0, box)
            name = next(
                (n for n, b in self.faces(t0).items() if followed is not None and b is followed),
                None,
            )
            now = self.faces(t1).get(name) if name is not None else None
            if now is None and self.drift and self.faces(t1):
                centre = box[:2] + box[2:] / 2
                now = min(
                    self.faces(t1).values(),
                    key=lambda b: float(np.linalg.norm(b[:2] + b[2:] / 2 - centre)),
                )
            points.append(shape_in(now if now is not None else box))
        return np.stack(points), [f"h{t1}"] * len(boxes)

    def validate_batch(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        t = fid(image)
        self.calls.append(("fv", t, len(points)))
        return np.array(
            [0.9 if self._on(t, box_from_points(p), 0.5) is not None else 0.1 for p in points]
        )

    def localize_batch(
        self, image: np.ndarray, boxes: np.ndarray, mirrored: bool = False
    ) -> np.ndarray:
        t = fid(image)
        self.calls.append(("fll-mirrored" if mirrored else "fll", t, len(boxes)))
        out = []
        for box in boxes:
            face = self._on(t, box)
            out.append(shape_in(face if face is not None else box))
        return np.stack(out)

    def per_frame(self, network: str) -> Counter[int]:
        return Counter(t for n, t, _ in self.calls if n == network)


def _never(t: int) -> bool:
    return False


def run(
    world: World, n: int, config: TrackerConfig | None = None, **multi: Any
) -> list[list[Face]]:
    options = MultiConfig(**{"faces": None, "detect_every": 5, "max_lost": 20, **multi})
    tracker = MultiTracker(world, config or TrackerConfig(), options)
    return [tracker.step(frame(t)) for t in range(n)]


def ids_on(results: list[list[Face]], world: World, name: str) -> list[int | None]:
    """The id of the validated face whose box lies on true face ``name``, frame by frame."""
    out: list[int | None] = []
    for t, faces in enumerate(results):
        box = world.faces(t).get(name)
        hit = [
            f.face_id
            for f in faces
            if box is not None and f.state != "lost" and iou(f.box, box) > 0.8
        ]
        out.append(hit[0] if len(hit) == 1 else None)
    return out


def steady(x: float) -> Any:
    return lambda t: box_at(x)


# ---------------------------------------------------------------------------------------------


def test_faces_get_ids_in_order_of_appearance_and_keep_them() -> None:
    world = World({"a": steady(50), "b": lambda t: box_at(300) if t >= 12 else None})
    results = run(world, 30)
    assert [f.face_id for f in results[0]] == [0]
    assert ids_on(results, world, "a") == [0] * 30
    # b appears at frame 12 and is found by the next periodic detection, frame 15
    assert ids_on(results, world, "b")[:15] == [None] * 15
    assert ids_on(results, world, "b")[15:] == [1] * 15
    assert sorted(world.per_frame("detect")) == list(range(0, 30, 5))  # room for more: every 5


def test_each_network_runs_once_per_frame_on_the_batch_of_all_tracks() -> None:
    world = World({"a": steady(50), "b": steady(200), "c": steady(350)})
    run(world, 8, TrackerConfig(check_refined=False))
    for network in ("bt", "fv", "fll"):
        assert max(world.per_frame(network).values()) == 1, network
    bt_batches = [b for n, t, b in world.calls if n == "bt"]
    assert bt_batches == [3] * 7  # frames 1-7, all three faces in one call
    # by default FV looks twice a tracked frame, at BT's estimates and at FLL's refined
    # points, each time on the batch of all tracks
    world = World({"a": steady(50), "b": steady(200), "c": steady(350)})
    run(world, 8)
    for t in range(1, 8):
        assert [(n, b) for n, u, b in world.calls if u == t and n != "detect"] == [
            ("bt", 3),
            ("fv", 3),
            ("fll", 3),
            ("fv", 3),
        ]
    # frame 0: FLL once for the three new tracks, then FV once to accept them
    assert [(n, b) for n, t, b in world.calls if t == 0] == [
        ("detect", 1),
        ("fll", 3),
        ("fv", 3),
    ]


def test_ids_from_left_to_right_within_a_frame() -> None:
    world = World({"right": steady(400), "left": steady(20), "mid": steady(200)})
    results = run(world, 2)
    assert [ids_on(results, world, n)[1] for n in ("left", "mid", "right")] == [0, 1, 2]


def test_a_short_occlusion_keeps_the_id() -> None:
    world = World(
        {"a": lambda t: None if 10 <= t < 25 else box_at(50), "b": steady(300)}
    )  # 15 frames unseen, max_lost 20
    results = run(world, 40)
    assert set(ids_on(results, world, "a")[:10]) == {0}
    assert set(ids_on(results, world, "a")[26:]) == {0}
    assert set(ids_on(results, world, "b")) == {1}
    # while a is lost, MTCNN runs on every frame (Algorithm 1's re-detection), and once more
    # with its sensitive settings when that finds nothing for it, for its first 10 lost frames
    # (MultiConfig.lost_looks); after that on every third lost frame (lost_every: 22) and on
    # the periodic frames (20)
    looked = [t for t in range(11, 25) if world.per_frame("detect")[t]]
    assert looked == [*range(11, 21), 22] and all(world.per_frame("detect")[t] == 1 for t in looked)
    assert [t for t in range(11, 25) if world.per_frame("relaxed")[t]] == looked
    lost = [next(f for f in faces if f.face_id == 0).state for faces in results[10:25]]
    assert set(lost) == {"lost"}


def test_lost_faces_share_one_relaxed_look_which_starts_no_track() -> None:
    # a and b vanish at frame 10 and come back 25 px aside at 11, too faint for the strict
    # detector until frame 20; c is faint throughout: only the sensitive look ever sees it
    def back(x: float) -> Any:
        return lambda t: box_at(x) if t < 10 else None if t == 10 else box_at(x + 25)

    world = World(
        {"a": back(50), "b": back(300), "c": steady(550)},
        faint={"a": lambda t: 10 <= t < 20, "b": lambda t: 10 <= t < 20, "c": lambda t: True},
    )
    results = run(world, 16)
    assert ids_on(results, world, "a")[11:] == [0] * 5
    assert ids_on(results, world, "b")[11:] == [1] * 5
    # both tracks, one call a frame: the look at once when lost (10), the re-detection (11)
    assert world.per_frame("relaxed") == Counter({10: 1, 11: 1})
    assert all(f.face_id in (0, 1) for faces in results for f in faces)  # c never a track
    # without it, both stay lost until the strict detector sees them again
    world.calls.clear()
    results = run(world, 16, TrackerConfig(relaxed_redetect=False))
    assert ids_on(results, world, "a")[11:] == [None] * 5
    assert world.per_frame("relaxed") == Counter()


def test_reacquire_is_for_the_single_target_only() -> None:
    # a vanishes at 10 and a face appears far away at 40 (beyond eq. 8 and reattach), while
    # a's track is still alive (max_lost 50): with several faces it is someone new
    world = World({"a": lambda t: box_at(50) if t < 10 else box_at(400) if t >= 40 else None})
    results = run(world, 45, max_lost=50)
    assert ids_on(results, world, "a")[:10] == [0] * 10
    assert ids_on(results, world, "a")[41:] == [1] * 4
    # the papers' single target takes it back once lost for `reacquire` frames
    single = MultiTracker(World(world.paths), TrackerConfig(), MultiConfig(faces=1))
    results = [single.step(frame(t)) for t in range(45)]
    assert ids_on(results, world, "a")[41:] == [0] * 4


def test_a_face_gone_longer_than_max_lost_ends_and_comes_back_with_a_new_id() -> None:
    world = World({"a": lambda t: None if 5 <= t < 40 else box_at(50)})
    results = run(world, 50, max_lost=10)
    assert ids_on(results, world, "a")[:5] == [0] * 5
    # lost frames 5..15 (11 > max_lost 10): the track ends, nothing is reported after it
    assert [f.face_id for f in results[15]] == [0] and results[16] == []
    assert all(faces == [] for faces in results[16:40])
    back = ids_on(results, world, "a")[40:]
    assert back == [1] * 10


def test_two_faces_crossing_keep_their_ids() -> None:
    # a walks right in front, b walks left behind it and is hidden while they overlap
    def a(t: int) -> np.ndarray:
        return box_at(100 + 10 * t)

    def b(t: int) -> np.ndarray | None:
        x = 500 - 10 * t
        return None if abs(x - (100 + 10 * t)) < 50 else box_at(x, 125)

    world = World({"a": a, "b": b})
    results = run(world, 40)
    ids_a, ids_b = ids_on(results, world, "a"), ids_on(results, world, "b")
    assert ids_a == [0] * 40  # the face in front is never lost
    seen = [t for t in range(40) if b(t) is not None]
    assert len(seen) == 35  # hidden for frames 18-22
    assert [ids_b[t] for t in seen] == [1] * 35  # back as 1 once it reappears
    assert {f.face_id for faces in results for f in faces} == {0, 1}  # no third id


def test_the_same_face_is_never_reported_twice() -> None:
    # b vanishes next to a and its BT drifts onto a: the track that jumped is set back
    world = World(
        {"a": lambda t: box_at(100 + 2 * t), "b": lambda t: box_at(190) if t < 10 else None},
        drift=True,
    )
    results = run(world, 40, max_lost=15)
    for faces in results:
        valid = [f for f in faces if f.state != "lost"]
        for i, f in enumerate(valid):
            assert all(iou(f.box, g.box) < 0.5 for g in valid[i + 1 :])
    assert ids_on(results, world, "a") == [0] * 40
    assert all(f.state == "lost" for faces in results[10:] for f in faces if f.face_id == 1)
    assert all(f.face_id == 0 for faces in results[26:] for f in faces)  # b's track ended


def test_a_lost_track_is_not_given_another_face() -> None:
    world = World(
        {"a": lambda t: box_at(100 + 2 * t), "b": lambda t: box_at(190) if t < 10 else None}
    )
    results = run(world, 40, max_lost=15)
    assert ids_on(results, world, "a") == [0] * 40
    assert [f.state for faces in results[10:26] for f in faces if f.face_id == 1] == ["lost"] * 16
    assert all(f.face_id == 0 for faces in results[26:] for f in faces)


def test_faces_n_caps_the_number_of_tracks() -> None:
    world = World({"a": steady(20), "b": steady(200), "c": steady(400)})
    results = run(world, 6, faces=2)
    assert all(len(faces) == 2 for faces in results)
    assert sorted(world.per_frame("detect")) == [0]  # no room left: no periodic detection


def test_one_face_follows_algorithm_1_exactly() -> None:
    """faces=1 is the single CRCT tracker: the same points, boxes and states, frame by frame."""
    path = lambda t: None if 8 <= t < 12 else box_at(100 + 3 * t)  # noqa: E731
    world = World({"a": path, "b": lambda t: box_at(400) if t >= 4 else None})
    multi = run(world, 25, faces=1)

    class OneFace:  # the one-face Networks protocol on the same world
        detect = world.detect

        def bt_step(self, prev: Any, cur: Any, box: Any, state: Any) -> Any:
            points, states = world.bt_batch(prev, cur, box[None], [state])
            return points[0], states[0]

        def validate(self, image: Any, points: Any) -> float:
            return float(world.validate_batch(image, points[None])[0])

        def localize(self, image: Any, box: Any, mirrored: bool = False) -> Any:
            return world.localize_batch(image, box[None])[0]

    single = CRCTTracker(OneFace(), TrackerConfig())
    for t in range(25):
        ref = single.step(frame(t))
        got = [f for f in multi[t] if f.face_id == 0]
        if ref.points is None:
            assert got == []
            continue
        (face,) = got
        assert face.state == ref.state
        assert np.array_equal(face.points, ref.points) and np.array_equal(face.box, ref.box)
        if ref.score is not None:
            assert face.score == pytest.approx(ref.score)
    assert all(f.face_id == 0 for faces in multi for f in faces)  # b never gets a track


def test_reset_forgets_tracks_and_ids() -> None:
    world = World({"a": steady(50), "b": steady(300)})
    tracker = MultiTracker(world, TrackerConfig(), MultiConfig(faces=None))
    tracker.step(frame(0))
    tracker.step(frame(1))
    tracker.reset()
    faces = tracker.step(frame(0))
    assert [f.face_id for f in faces] == [0, 1]


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="faces"):
        MultiConfig(faces=0)
    with pytest.raises(ValueError, match="detect_every"):
        MultiConfig(detect_every=0)


def test_one_face_starts_on_the_most_confident_detection_in_any_order() -> None:
    class Reversed(World):
        def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
            return list(reversed(super().detect(image)))  # weakest first

    world = Reversed({"a": steady(50), "b": steady(300)})
    results = run(world, 3, faces=1)
    assert all(len(faces) == 1 for faces in results)
    assert ids_on(results, world, "a") == [0, 0, 0]  # a is detected first, hence scored higher


def test_a_new_face_starts_while_another_is_lost() -> None:
    """A lost track takes only detections within its gate: a face far away is a new face."""
    world = World(
        {
            "a": lambda t: None if 5 <= t < 30 else box_at(50),  # lost from frame 5
            "b": lambda t: box_at(450) if t >= 8 else None,  # enters far from a's box
        }
    )
    results = run(world, 12, detect_every=100)  # no periodic look: only a's re-detection
    assert ids_on(results, world, "b")[8:] == [1] * 4  # found on its first frame


def test_a_lost_face_s_fll_joins_the_frame_s_batch() -> None:
    """With ``lost_points="fll"`` a lost track's FLL in its held box rides in the same FLL call
    as the tracked faces', and FV runs once more on the lost faces' points alone; with ``bt``
    a lost face costs no FLL and no second FV. With ``lost_flip`` (the default) the lost
    track's FLL reads mirrored too, in a call of its own."""
    paths = {"a": steady(50), "b": lambda t: None if 10 <= t < 14 else box_at(300)}
    world = World(dict(paths))
    run(world, 12)
    frame_10 = [
        (n, b) for n, t, b in world.calls if t == 10 and n in ("bt", "fv", "fll", "fll-mirrored")
    ]
    assert frame_10 == [("bt", 2), ("fv", 2), ("fll", 1), ("fll-mirrored", 1), ("fv", 2)]
    assert {t for n, t, _ in world.calls if n == "fll-mirrored"} == {10, 11}  # b's lost frames
    no_flip = TrackerConfig(lost_flip=False)
    world = World(dict(paths))
    results = run(world, 12, no_flip)
    held = next(f for f in results[9] if f.face_id == 1).box
    lost = next(f for f in results[10] if f.face_id == 1)
    assert lost.state == "lost" and np.allclose(lost.box, held)  # FLL in the held box
    assert lost.score == pytest.approx(0.1)  # FV's score on those points
    frame_10 = [(n, b) for n, t, b in world.calls if t == 10 and n in ("bt", "fv", "fll")]
    # the second FV call scores the lost face's points and checks the tracked face's refined
    # ones (check_refined) in one batch
    assert frame_10 == [("bt", 2), ("fv", 2), ("fll", 2), ("fv", 2)]
    world = World(dict(paths))
    run(world, 12, TrackerConfig(check_refined=False, lost_flip=False))
    frame_10 = [(n, b) for n, t, b in world.calls if t == 10 and n in ("bt", "fv", "fll")]
    assert frame_10 == [("bt", 2), ("fv", 2), ("fll", 2), ("fv", 1)]
    world = World(dict(paths))
    run(world, 12, TrackerConfig(lost_points="bt", check_refined=False, lost_flip=False))
    frame_10 = [(n, b) for n, t, b in world.calls if t == 10 and n in ("bt", "fv", "fll")]
    assert frame_10 == [("bt", 2), ("fv", 2), ("fll", 1)]


def test_a_track_lost_in_a_jump_takes_its_face_back_in_the_same_frame() -> None:
    """Face b jumps at frame 10 (BT loses it, FV rejects): with ``redetect_on_loss`` the track
    runs MTCNN on that frame and takes its face back at once, keeping its id, and its FLL
    joins the other track's batch (a batch of its own when it reads mirrored, ``lost_flip``).
    Without it, frame 10 is lost and frame 11 re-detects."""
    paths = {
        "a": steady(50),
        "b1": lambda t: box_at(300) if t < 10 else None,
        "b2": lambda t: box_at(330) if t >= 10 else None,  # IoU with b1's box < 0.3
    }
    world = World(dict(paths))
    run(world, 14, detect_every=7)
    frame_10 = [(n, k) for n, t, k in world.calls if t == 10 and n in ("bt", "fll", "fll-mirrored")]
    assert frame_10 == [("bt", 2), ("fll", 1), ("fll-mirrored", 1)]
    world = World(dict(paths))
    results = run(world, 14, TrackerConfig(lost_flip=False), detect_every=7)  # none periodic at 10
    b = next(f for f in results[10] if f.face_id == 1)
    assert b.state == "redetected" and iou(b.box, box_at(330)) > 0.8
    assert world.per_frame("detect")[10] == 1
    frame_10 = [(n, k) for n, t, k in world.calls if t == 10 and n in ("bt", "fll")]
    assert frame_10 == [("bt", 2), ("fll", 2)]
    assert ids_on(results, world, "b2")[10:] == [1] * 4
    world = World(dict(paths))
    results = run(world, 14, TrackerConfig(redetect_on_loss=False), detect_every=7)
    assert next(f for f in results[10] if f.face_id == 1).state == "lost"
    assert next(f for f in results[11] if f.face_id == 1).state == "redetected"
    assert world.per_frame("detect")[10] == 0


def test_a_face_that_walks_out_of_the_picture_waits_unseen_and_comes_back() -> None:
    """Its held box mostly off the frame, lost 3 frames: no more points for it (they would be
    drawn on the background) and a look every third frame, not two detector passes a frame;
    back through the same edge before max_lost, it has its id. A face lost while mostly inside
    is written as lost as before."""
    world = World(
        {
            # 62% inside at frame 11, gone 12-23, back at the edge from 24
            "out": lambda t: box_at(560 + 5 * t) if t < 12 else box_at(598) if t >= 24 else None,
            "edge": lambda t: None if 10 <= t < 18 else box_at(605, 300),  # 88% inside
        }
    )
    results = run(world, 30, detect_every=50)
    out_rows = [(t, f.state) for t, faces in enumerate(results) for f in faces if f.face_id == 0]
    assert [t for t, s in out_rows if s == "lost"] == [12, 13]  # then unseen until it is back
    assert set(ids_on(results, world, "out")[25:]) == {0}
    edge = ids_on(results, world, "edge")
    assert set(edge[:10]) == {1} == set(edge[18:])
    assert [t for faces in results[10:18] for t in [f.state for f in faces if f.face_id == 1]] == [
        "lost"
    ] * 8
    looks = sorted(world.per_frame("relaxed"))  # the sensitive look: lost tracks' alone
    assert all(world.per_frame("relaxed")[t] == 1 for t in looks)
    assert [t for t in looks if 18 <= t < 24] == [18, 21]  # "out" alone lost: every third
    assert max(f.face_id for faces in results for f in faces) == 1
    # the papers' single target never stops writing: it awaits its face where it was
    single = MultiTracker(World(world.paths), TrackerConfig(), MultiConfig(faces=1))
    assert all(len(single.step(frame(t))) == 1 for t in range(30))


def test_a_lost_track_s_points_on_another_face_are_not_reported() -> None:
    """a goes behind b and vanishes: FLL in a's held box reads b's face. Those points are b's;
    a's frame is lost without points rather than a second set on b."""
    world = World(
        {
            "a": lambda t: box_at(100 + 15 * t) if t < 10 else None,  # reaches x=235 at 9
            "b": steady(250),
        }
    )
    results = run(world, 16)
    for faces in results[10:]:
        assert [f.face_id for f in faces if f.state == "lost"] == []  # nothing drawn on b
        assert [f.face_id for f in faces] == [1]


def test_a_face_back_beyond_the_gate_takes_its_id_back_and_counts_as_a_redetection() -> None:
    """Hidden 10 frames, back 1.9 box diagonals away (beyond eq. 8's gate, within
    ``reattach``): a new track that is the lost face, its id and one re-detection."""
    world = World({"a": lambda t: box_at(50) if t < 10 else box_at(170) if t >= 20 else None})
    tracker = MultiTracker(world, TrackerConfig(), MultiConfig(faces=None, detect_every=5))
    results = [tracker.step(frame(t)) for t in range(30)]
    assert ids_on(results, world, "a")[:10] == [0] * 10
    assert set(ids_on(results, world, "a")[21:]) == {0}
    assert tracker.redetections == 1 and tracker.next_id == 1


def test_with_likeness_a_stranger_where_a_face_was_lost_gets_an_id_of_its_own() -> None:
    """``reattach`` gives a lost face's id to a new track near it; with ``likeness`` only if
    the new face looks like the lost one (each face drawn as a picture of its own)."""
    import cv2

    def picture(seed: int, side: int) -> np.ndarray:
        small = np.random.default_rng(seed).uniform(0, 255, (6, 6, 3)).astype(np.float32)
        return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)

    def ids(second_seed: int, likeness: float) -> list[int | None]:
        world = World({"a": lambda t: box_at(50) if t < 10 else box_at(170) if t >= 20 else None})
        tracker = MultiTracker(
            world, TrackerConfig(likeness=likeness), MultiConfig(faces=None, detect_every=5)
        )
        results = []
        for t in range(30):
            image = np.full((480, 640, 3), 128, np.uint8)
            box = world.faces(t).get("a")
            if box is not None:
                x0, y0 = int(box[0] - box[2] / 2), int(box[1] - box[3] / 2)
                side = int(2 * box[3])
                image[y0 : y0 + side, x0 : x0 + side] = picture(1 if t < 10 else second_seed, side)
            image[0, 0, 0] = t  # the fakes read the frame's number there
            results.append(tracker.step(image))
        return ids_on(results, world, "a")

    assert set(ids(2, 0.25)[21:]) == {1}  # another person: a new id
    assert set(ids(1, 0.25)[21:]) == {0}  # the same face: its id back
    assert set(ids(2, 0.0)[21:]) == {0}  # no check: by place alone, as before


def test_with_faces_n_a_face_that_walked_out_gives_its_place_up() -> None:
    """``faces=2``: a walks out, c is in the picture all along. c is followed from the next
    periodic detection (before: only once a's track ended, ``max_lost`` frames later); a's
    track then ends, its place taken, and never more than two faces are followed."""
    world = World(
        {
            "a": lambda t: box_at(560 + 5 * t) if t < 12 else None,  # 62% inside at 11
            "b": steady(50),
            "c": steady(300),
        }
    )
    results = run(world, 40, faces=2, max_lost=30)
    assert ids_on(results, world, "c")[:15] == [None] * 15
    assert set(ids_on(results, world, "c")[16:]) == {2}  # found at the detection of frame 15
    assert all(len(faces) <= 2 for faces in results)
    assert set(ids_on(results, world, "b")) == {0}


def _pictures(world: World, t: int, seeds: dict[str, int]) -> np.ndarray:
    """Frame ``t`` with each face drawn as a picture of its own (``seeds``: name -> seed), so
    that ``likeness`` can tell them apart."""
    import cv2

    image = np.full((480, 640, 3), 128, np.uint8)
    for name, seed in seeds.items():
        box = world.faces(t).get(name)
        if box is not None:
            side = int(2 * box[3])
            x0, y0 = int(box[0] - box[2] / 2), int(box[1] - box[3] / 2)
            small = np.random.default_rng(seed).uniform(0, 255, (6, 6, 3)).astype(np.float32)
            image[y0 : y0 + side, x0 : x0 + side] = cv2.resize(small, (side, side))
    image[0, 0, 0] = t  # the fakes read the frame's number there
    return image


def test_a_track_set_back_from_a_neighbour_keeps_the_look_of_its_own_face() -> None:
    """With ``likeness``: a vanishes, its BT drifts onto b and the duplicate rule sets it
    back; the look it keeps is a's, so a coming back in place is taken back at once."""
    world = World(
        {"a": lambda t: box_at(100) if t < 10 or t >= 20 else None, "b": steady(200)}, drift=True
    )
    tracker = MultiTracker(
        world, TrackerConfig(likeness=0.25), MultiConfig(faces=None, detect_every=5)
    )
    results = [tracker.step(_pictures(world, t, {"a": 1, "b": 2})) for t in range(30)]
    assert ids_on(results, world, "a")[21:] == [0] * 9
    assert set(ids_on(results, world, "b")) == {1}


def test_a_resting_lost_track_takes_the_detection_that_runs_for_another() -> None:
    """a, lost 15 frames, rests between its own looks; b is lost too from 19, so MTCNN runs
    on every frame: a, back in place at 21, is re-detected at 21, not at its next own look."""
    world = World(
        {
            "a": lambda t: box_at(100) if t < 5 else None if t <= 20 else box_at(117),
            "b": lambda t: None if 19 <= t <= 27 else box_at(400),
        }
    )
    results = run(world, 26, detect_every=50)
    a = [next((f.state for f in faces if f.face_id == 0), None) for faces in results]
    assert a[21:23] == ["redetected", "tracked"]
