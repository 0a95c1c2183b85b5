"""Video files and cameras through a classifier or a detector, frame by frame, pipelined.

Three stages on their own threads, joined by small bounded queues (so memory stays flat and a slow stage
slows the others instead of piling frames up): capture (OpenCV decodes the next frame), inference (the
Classifier/Detector, the same code as `tfedge-run classify/detect`), output (JSON lines, drawing, encoding
the annotated video). OpenCV's decode/encode and the interpreter's invoke release the GIL, so the stages
overlap on a multi-core Pi. `pipelined=False` runs the same stages one after the other in one thread: the
baseline of tools/bench_stream.py.

OpenCV comes from the `stream` extra (`pip install 'tfedge-device[stream]'`: opencv-python-headless, which
has aarch64 wheels); nothing else in the device package needs it.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .detect import THRESHOLD as DETECT_THRESHOLD
from .detect import TOP_K as DETECT_TOP_K
from .errors import BadInput, EnvironmentMissing
from .nms import IOU_THRESHOLD
from .quiet import quiet_native

log = logging.getLogger(__name__)

DEPTH = 4  # frames in flight between two stages
SWITCH_INTERVAL_S = 0.0005
_END = object()
# The classify/detect CLIs' defaults (pycoral's), per task; `options` given to a Stream override them.
DEFAULTS = {"classify": {"threshold": 0.1, "top_k": 5},
            "detect": {"threshold": DETECT_THRESHOLD, "top_k": DETECT_TOP_K, "iou": IOU_THRESHOLD}}
CAMERA_HINT = ("connect a camera (USB webcam, or the Pi camera with its V4L2 driver), check `ls /dev/video*`, "
               "and that this user is in the `video` group")


def cv2_module():
    try:
        import cv2
    except ImportError:
        raise EnvironmentMissing("OpenCV is not installed (it reads videos and cameras)",
                                 hint="pip install 'tfedge-device[stream]' (opencv-python-headless)") from None
    # OpenCV's own warnings ("[ WARN:0@0.02] global cap_v4l.cpp:915 open VIDEOIO(V4L2:/dev/video0): can't open
    # camera by index", one per backend tried) would precede tfedge's one-line error: only its errors are shown.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


@dataclass
class StreamResult:
    """What a run did: frames read and processed, seconds, and per-stage time (ms per processed frame)."""

    frames_read: int = 0
    frames_processed: int = 0
    seconds: float = 0.0
    stage_ms: dict = field(default_factory=lambda: {"capture": 0.0, "inference": 0.0, "output": 0.0})

    @property
    def fps(self) -> float:
        return self.frames_processed / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        done = max(self.frames_processed, 1)
        return {"frames_read": self.frames_read, "frames_processed": self.frames_processed,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
                "stage_ms_per_frame": {k: round(v / done, 3) for k, v in self.stage_ms.items()}}


def open_capture(video: str | None, camera: int | None):
    """A cv2.VideoCapture on the file or camera, opened; exit 2 for a bad file, exit 3 for no camera."""
    cv2 = cv2_module()
    if video is not None:
        if not Path(video).is_file():
            raise BadInput(f"video not found: {video}")
        with quiet_native():  # OpenCV's AVI parser writes to stderr itself ("Unexpected list type...")
            capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise BadInput(f"cannot read video {Path(video).name}: not a video OpenCV can decode")
        return capture
    with quiet_native():
        capture = cv2.VideoCapture(int(camera))
    if not capture.isOpened():
        raise EnvironmentMissing(f"no camera {camera} (/dev/video{camera} cannot be opened)", hint=CAMERA_HINT)
    return capture


class Stream:
    """One video source through `task` ("classify" or "detect", a Classifier or Detector already loaded)."""

    def __init__(self, capture, runner, task: str, every: int = 1, max_frames: int | None = None,
                 output: Path | None = None, emit=None, options: dict | None = None):
        self.capture, self.runner, self.task = capture, runner, task
        self.every, self.max_frames, self.output = every, max_frames, output
        self.emit = emit or (lambda record: None)  # called with each frame's result record, in frame order
        self.options = {**DEFAULTS[task], **(options or {})}
        self.result = StreamResult()
        self._writer = None
        self._error: BaseException | None = None

    # -- the three stages ---------------------------------------------------------------------------------------
    def frames(self):
        """(index, timestamp ms, RGB uint8 frame) of every `every`-th frame; the others are grabbed, not decoded."""
        cv2 = cv2_module()
        index = taken = 0
        while self.max_frames is None or taken < self.max_frames:
            started = time.perf_counter()
            if index % self.every:
                if not self.capture.grab():
                    return
                self.result.frames_read += 1
                index += 1
                continue
            ok, frame = self.capture.read()
            if not ok:
                return
            timestamp = self.capture.get(cv2.CAP_PROP_POS_MSEC)
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            self.result.stage_ms["capture"] += (time.perf_counter() - started) * 1e3
            self.result.frames_read += 1
            taken += 1
            yield index, timestamp, rgb, frame
            index += 1

    def infer(self, item):
        index, timestamp, rgb, bgr = item
        started = time.perf_counter()
        name = f"frame {index}"
        if self.task == "detect":
            found = self.runner.detect_pixels(rgb, self.options["threshold"], self.options["top_k"],
                                              self.options["iou"], name=name)
            results = [obj.to_dict() for obj in found.objects]
        else:
            found = self.runner.classify_pixels(rgb, self.options["top_k"], self.options["threshold"],
                                                name=name)
            results = [prediction.to_dict() for prediction in found.classes]
        self.result.stage_ms["inference"] += (time.perf_counter() - started) * 1e3
        record = {"frame": index, "timestamp_ms": round(timestamp, 3), "results": results,
                  "inference_ms": round(found.inference_ms[0], 3)}
        return record, bgr, found

    def write(self, item) -> None:
        record, bgr, found = item
        started = time.perf_counter()
        self.emit(record)
        if self.output is not None:
            self._write_frame(bgr, found)
        self.result.frames_processed += 1
        self.result.stage_ms["output"] += (time.perf_counter() - started) * 1e3

    def _write_frame(self, frame, found) -> None:
        """Draw on the decoded BGR frame with OpenCV (no copy through Pillow: this stage bounds the frame rate)
        and append it to the output video."""
        cv2 = cv2_module()
        if self.task == "detect":
            thickness = max(2, round(min(frame.shape[:2]) / 200))
            for obj in found.objects:
                colour = bgr_colour(obj.label_id)
                left, top, right, bottom = (round(v) for v in obj.box)
                cv2.rectangle(frame, (left, top), (right, bottom), colour, thickness)
                _label(cv2, frame, f"{obj.label} {obj.score:.2f}", left, max(top, 14), colour)
        else:
            for row, prediction in enumerate(found.classes[:3]):
                _label(cv2, frame, f"{prediction.label} {prediction.score:.2f}", 2, 16 + 18 * row,
                       bgr_colour(prediction.id))
        if self._writer is None:
            fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.output.suffix.lower() == ".mp4" else "MJPG"))
            self._writer = cv2.VideoWriter(str(self.output), fourcc, fps / self.every,
                                           (frame.shape[1], frame.shape[0]))
            if not self._writer.isOpened():
                raise BadInput(f"cannot write video {self.output.name}: use .avi (MJPG) or .mp4")
        self._writer.write(frame)

    # -- running ------------------------------------------------------------------------------------------------
    def run(self, pipelined: bool = True) -> StreamResult:
        started = time.perf_counter()
        try:
            if pipelined:
                self._pipelined()
            else:
                for item in self.frames():
                    self.write(self.infer(item))
        finally:
            self.result.seconds = time.perf_counter() - started
            self.capture.release()
            if self._writer is not None:
                self._writer.release()
        return self.result

    def _pipelined(self) -> None:
        decoded: queue.Queue = queue.Queue(DEPTH)
        inferred: queue.Queue = queue.Queue(DEPTH)
        stop = threading.Event()

        def guarded(work):
            def body():
                try:
                    work()
                except BaseException as err:  # noqa: BLE001 - handed to the main thread, raised there
                    self._error = self._error or err
                    stop.set()
            return body

        def put(q, item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def get(q):
            while not stop.is_set():
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    continue
            return _END

        def capture_stage():
            for item in self.frames():
                if not put(decoded, item):
                    return
            put(decoded, _END)

        def output_stage():
            while (item := get(inferred)) is not _END:
                self.write(item)

        # The stages hand the GIL to each other between their native calls (decode, invoke, encode): with the
        # default 5 ms switch interval a stage waiting for it idles for most of a frame.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        threads = [threading.Thread(target=guarded(capture_stage), name="tfedge-capture", daemon=True),
                   threading.Thread(target=guarded(output_stage), name="tfedge-output", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            while (item := get(decoded)) is not _END:
                if not put(inferred, self.infer(item)):
                    break
            put(inferred, _END)
        except BaseException:
            stop.set()
            raise
        finally:
            threads[1].join()
            stop.set()
            threads[0].join()
            sys.setswitchinterval(interval)
        if self._error is not None:
            raise self._error


def bgr_colour(class_id: int) -> tuple:
    """The class's colour of draw.PALETTE (Ultralytics'), as OpenCV's BGR."""
    from .draw import colour

    red, green, blue = colour(class_id)
    return blue, green, red


def _label(cv2, frame, text: str, x: int, y: int, colour: tuple) -> None:
    """White text on a box of the class's colour, its baseline at y."""
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(frame, (x, y - height - 2), (x + width + 2, y + base), colour, cv2.FILLED)
    cv2.putText(frame, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def json_lines(stream=sys.stdout):
    """An emit function printing one JSON object a line, flushed (a consumer reads results as they come)."""
    def emit(record: dict) -> None:
        stream.write(json.dumps(record) + "\n")
        stream.flush()
    return emit
