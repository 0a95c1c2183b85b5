"""Pick the TFLite interpreter runtime and the Edge TPU delegate. Everything else imports from here.

The registry is ordered by preference; `TFEDGE_RUNTIME=<name>` forces one. TensorFlow's own tf.lite is
deliberately absent: the device package never imports TensorFlow, and TF 2.21's tf.lite.Interpreter gave
wrong int8 transformer outputs here where LiteRT was right.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import platform
from dataclasses import dataclass

from .errors import BadInput, EnvironmentMissing


@dataclass(frozen=True)
class Runtime:
    name: str
    module: str  # exposes Interpreter and load_delegate
    distribution: str
    limitations: str = ""

    @functools.cached_property
    def api(self):
        return importlib.import_module(self.module)

    @property
    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


RUNTIMES = (
    Runtime("litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    Runtime(
        "tflite-runtime",
        "tflite_runtime.interpreter",
        "tflite-runtime",
        limitations="tflite-runtime 2.14 (2023): needs numpy<2, lacks op versions newer than TF 2.14 "
        "(e.g. FULLY_CONNECTED v12 from TF 2.21 dynamic-range models), int8 kernels much slower than LiteRT",
    ),
)
RUNTIMES_BY_NAME = {runtime.name: runtime for runtime in RUNTIMES}

# Edge TPU runtime library per OS, as pycoral's utils/edgetpu.py names them.
EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
EDGETPU_INSTALL_HINT = (
    "install the Edge TPU runtime: on Debian/Raspberry Pi OS add Coral's apt repository and "
    "`apt-get install libedgetpu1-std` (see coral.ai/docs/accelerator/get-started)"
)

ARM32 = ("armv6l", "armv7l", "armv8l")  # 32-bit ARM userlands: no LiteRT or tflite-runtime wheels on PyPI
_NO_WHEELS_HINT = (
    "LiteRT and tflite-runtime publish no wheels for 32-bit ARM (armv7l) on PyPI; install the 64-bit "
    "Raspberry Pi OS (aarch64) and `pip install tfedge-device`"
)


def userland(pointer_bits: int, platform_tag: str) -> str:
    """The userland's architecture as pip sees it (packaging.tags._linux_platforms): sysconfig.get_platform()
    names the kernel's machine, so a 32-bit interpreter on a 64-bit kernel ("linux-aarch64" on 32-bit
    Raspberry Pi OS with its default 64-bit kernel) is told apart by its pointer size: i686 / armv8l (which
    installs armv7l wheels). `pointer_bits`: struct.calcsize("P") * 8; `platform_tag`: sysconfig.get_platform().
    """
    machine = platform_tag.split("-", 1)[-1].replace("-", "_").replace(".", "_")
    if pointer_bits == 32 and machine == "aarch64":
        return "armv8l"
    if pointer_bits == 32 and machine == "x86_64":
        return "i686"
    return machine


def this_userland() -> str:
    import struct
    import sysconfig

    return userland(struct.calcsize("P") * 8, sysconfig.get_platform())


def _importable(runtime: Runtime) -> bool:
    try:
        runtime.api  # noqa: B018 - import it
    except ImportError:
        return False
    return True


@functools.cache
def get_runtime(name: str | None = None) -> Runtime:
    """The runtime named (or in TFEDGE_RUNTIME), else the first importable one in RUNTIMES."""
    name = name or os.environ.get("TFEDGE_RUNTIME") or None
    if name:
        if name not in RUNTIMES_BY_NAME:
            raise BadInput(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES_BY_NAME)}")
        runtime = RUNTIMES_BY_NAME[name]
        if not _importable(runtime):
            raise EnvironmentMissing(
                f"runtime {name} is not installed", hint=f"pip install {runtime.distribution}"
            )
        return runtime
    for runtime in RUNTIMES:
        if _importable(runtime):
            return runtime
    hint = _NO_WHEELS_HINT if this_userland() in ARM32 else "pip install ai-edge-litert"
    raise EnvironmentMissing("no TFLite runtime is installed (tried ai-edge-litert, tflite-runtime)", hint=hint)


def edgetpu_library() -> str:
    system = platform.system()
    if system not in EDGETPU_LIBRARIES:
        raise EnvironmentMissing(f"the Edge TPU runtime is not available for {system}")
    return EDGETPU_LIBRARIES[system]


def edgetpu_library_loads() -> tuple[bool, str]:
    """Can the Edge TPU runtime library be loaded? (loads, reason). Checked with ctypes before LiteRT's
    load_delegate, whose Delegate.__del__ prints an AttributeError traceback when the library is missing
    (ai-edge-litert 2.3)."""
    import ctypes

    try:
        library = edgetpu_library()
        ctypes.CDLL(library)
    except EnvironmentMissing as err:
        return False, err.message
    except OSError as err:
        return False, f"cannot load the Edge TPU runtime {library}: {str(err).splitlines()[0]}"
    return True, f"{library} loads"


def load_edgetpu_delegate(runtime: Runtime, device: str | None = None):
    """Load the Edge TPU delegate through the runtime's load_delegate; exit 3 when the library is missing."""
    loads, reason = edgetpu_library_loads()
    if not loads:
        raise EnvironmentMissing(reason, hint=EDGETPU_INSTALL_HINT)
    library = edgetpu_library()
    options = {"device": device} if device else {}
    try:
        return runtime.api.load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as err:
        raise EnvironmentMissing(
            f"cannot load the Edge TPU delegate {library}: {str(err).splitlines()[0] if str(err) else err}",
            hint=EDGETPU_INSTALL_HINT,
        ) from err


def describe() -> dict:
    """Runtime in use and its version, for `tfedge-run info` and manifests."""
    runtime = get_runtime()
    return {
        "runtime": runtime.name,
        "distribution": runtime.distribution,
        "version": runtime.version,
        "limitations": runtime.limitations or None,
        "edgetpu_library": EDGETPU_LIBRARIES.get(platform.system()),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
