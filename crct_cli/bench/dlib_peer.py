"""dlib's per-frame HOG detector + 68-point ERT as a whole process, the peer of ``crct track``.

``python -m crct_cli.bench.dlib_peer VIDEO OUT_DIR`` decodes every frame to RGB with PyAV,
finds faces with dlib's HOG detector (no upsampling), runs the 68-point ERT shape predictor
(``shape_predictor_68_face_landmarks.dat`` of the ``face_recognition_models`` package) on the
first face and writes ``OUT_DIR/000001.pts``... for the frames with a face, as crct does: what
people reach for when they want landmarks fast on a CPU, measured the same way every time by
``crct benchmark --speed``. It imports nothing of crct beyond this file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PREDICTOR = "shape_predictor_68_face_landmarks.dat"


def available() -> bool:
    """dlib and the ERT model are installed (find_spec imports neither)."""
    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "models" / PREDICTOR


def track_video(video: str, out: Path) -> int:
    """Write a .pts per frame with a face; return the number of frames decoded."""
    import av
    import dlib

    detect, predict = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))
    out.mkdir(parents=True, exist_ok=True)
    frames = 0
    with av.open(video) as container:
        for frames, frame in enumerate(container.decode(video=0), 1):
            image = frame.to_ndarray(format="rgb24")
            faces = detect(image, 0)
            if len(faces):
                shape = predict(image, faces[0])
                rows = "".join(f"{shape.part(k).x} {shape.part(k).y}\n" for k in range(68))
                text = f"version: 1\nn_points:  68\n{{\n{rows}}}\n"
                (out / f"{frames:06d}.pts").write_text(text)
    return frames


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(track_video(sys.argv[1], Path(sys.argv[2])))
