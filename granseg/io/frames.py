"""Video frames read lazily from a folder of JPEG/PNG images or a video file (OpenCV).

>>> frames = open_frames("clip/")          # or "clip.mp4"
>>> len(frames), frames.size                # (N, (H, W))
>>> frame = frames[0]                       # H x W x 3 uint8 RGB

Every source checks on open that it holds at least one frame and reads frame 0 for the size; later frames are
decoded only when asked for (a small cache keeps the last few). A frame that cannot be decoded, or whose size
differs from frame 0, raises :class:`granseg.errors.InputError` when it is read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from granseg.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


class Frames:
    """A read-only sequence of ``H x W x 3`` uint8 RGB frames, all of one size."""

    def __init__(self, cache_size: int = 4) -> None:
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def _read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def name(self, index: int) -> str:
        """A file stem for frame ``index`` (the image's stem, or a zero-padded index)."""
        return f"{index:05d}"

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of every frame (that of frame 0)."""
        if self._size is None:
            self._size = tuple(self[0].shape[:2])  # type: ignore[assignment]
        return self._size  # type: ignore[return-value]

    def __getitem__(self, index: int) -> np.ndarray:
        n = len(self)
        if not isinstance(index, int | np.integer) or not -n <= index < n:
            raise IndexError(f"frame {index} out of range (0..{n - 1})")
        index = int(index) % n
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        frame = self._read(index)
        if self._size is not None and tuple(frame.shape[:2]) != self._size:
            raise InputError(
                f"frame {index} ({self.name(index)}) is {frame.shape[1]}x{frame.shape[0]}, but frame 0 is "
                f"{self._size[1]}x{self._size[0]}: all frames must have one size"
            )
        if self._size is None:
            self._size = tuple(frame.shape[:2])  # type: ignore[assignment]
        self._cache[index] = frame
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return frame

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]


class ArrayFrames(Frames):
    """Frames held in memory (a list of ``H x W x 3`` arrays); sizes are checked up front."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        super().__init__(cache_size=0)
        from granseg.io.images import to_rgb_uint8

        if len(frames) == 0:
            raise InputError("no frames given")
        self._frames = [to_rgb_uint8(np.asarray(f)) for f in frames]
        sizes = {f.shape[:2] for f in self._frames}
        if len(sizes) > 1:
            raise InputError(f"frames have different sizes: {sorted(sizes)}")
        self._size = tuple(self._frames[0].shape[:2])  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._frames)

    def _read(self, index: int) -> np.ndarray:
        return self._frames[index]


class FolderFrames(Frames):
    """The image files of a folder, in sorted name order (or an explicit list of image paths)."""

    def __init__(self, folder: Path | Sequence[Path], cache_size: int = 4) -> None:
        super().__init__(cache_size)
        if isinstance(folder, Path):
            files = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            self.paths = sorted(files)
        else:
            self.paths = [Path(p) for p in folder]
        if not self.paths:
            raise InputError(f"no JPEG/PNG frames in {folder}")
        self.size  # noqa: B018  (reads frame 0: fails early on an unreadable first frame)

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[index].stem

    def _read(self, index: int) -> np.ndarray:
        from granseg.io.images import load_image

        try:
            return load_image(self.paths[index])
        except InputError as exc:
            raise InputError(f"frame {index} ({self.paths[index].name}) cannot be read: {exc}") from None


class VideoFileFrames(Frames):
    """Frames of a video file decoded by OpenCV. Sequential reads are cheap; a seek re-opens the decoder."""

    def __init__(self, path: Path, cache_size: int = 4) -> None:
        import cv2

        super().__init__(cache_size)
        self.path = path
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise InputError(f"cannot open video {path}")
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self._next = 0
        if count <= 0:  # some containers do not say: count by decoding
            count = 0
            while self._capture.grab():
                count += 1
            self._seek(0)
        if count == 0:
            raise InputError(f"video {path} holds no frames")
        self._count = count
        self.size  # noqa: B018

    def __len__(self) -> int:
        return self._count

    def _seek(self, index: int) -> None:
        import cv2

        self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._next = index

    def _read(self, index: int) -> np.ndarray:
        import cv2

        if index != self._next:
            self._seek(index)
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise InputError(f"frame {index} of {self.path.name} cannot be decoded")
        self._next = index + 1
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def open_frames(source: str | Path | Sequence[np.ndarray] | Frames) -> Frames:
    """Frames from a folder of images, a video file, a list of image paths or of arrays, or a :class:`Frames`."""
    if isinstance(source, Frames):
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            return FolderFrames(path)
        if path.is_file():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise InputError(f"{path} is one image; give a folder of frames or a video file")
            return VideoFileFrames(path)
        raise InputError(f"no such folder or video file: {path}")
    items = list(source)
    if items and isinstance(items[0], str | Path):
        return FolderFrames([Path(p) for p in items])
    return ArrayFrames(items)


def write_clip(path: str | Path, pictures, fps: float = 10.0, gif_long_side: int = 480) -> Path:
    """Write ``H x W x 3`` uint8 RGB ``pictures`` (an iterable) as an MP4 (OpenCV, mp4v) or a GIF (Pillow,
    downscaled to ``gif_long_side``), atomically: a temporary file in the same folder, then ``os.replace``."""
    import os
    import tempfile

    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise InputError(f"a clip is .mp4 or .gif, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    from granseg.io.files import _FILE_MODE

    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        if suffix == ".mp4":
            writer = None
            for picture in pictures:
                if writer is None:
                    size = (picture.shape[1], picture.shape[0])
                    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            if writer is None:
                raise InputError("no frames to write")
            writer.release()
        else:
            from PIL import Image

            images = []
            for picture in pictures:
                scale = min(1.0, gif_long_side / max(picture.shape[:2]))
                small = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                images.append(Image.fromarray(small))
            if not images:
                raise InputError("no frames to write")
            images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
