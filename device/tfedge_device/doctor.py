"""Will inference (and the Edge TPU) work on this device? Every deciding fact, each with a fix.

The checks are a table (CHECKS: name, function, when it is required). Each check is a small function of a
`Probe`, which knows the root of the file system to read: "/" on a device, a fake tree of /proc, /sys, /dev
and /usr/lib files in tests. Interpreter facts (Python, word size, installed packages) are this process's own.
Where each fact comes from:
  userland     struct.calcsize("P"), sysconfig.get_platform(), platform.architecture() — never
               platform.machine(), which names the kernel (aarch64 under 32-bit Raspberry Pi OS too)
  runtime      runtime.get_runtime() (TFEDGE_RUNTIME respected) and its known limitations
  libedgetpu   ROOT/usr/lib/<multiarch>/, ROOT/usr/local/lib/, ROOT/usr/lib/ (and ldconfig's cache through
               ctypes.util.find_library on the real root); the flavour from ROOT/var/lib/dpkg/status
               (libedgetpu1-std: reduced clock, libedgetpu1-max: maximum clock, coral.ai/docs/accelerator)
  delegate     runtime.load_edgetpu_delegate, the one place that loads it
  coral        USB ids in ROOT/sys/bus/usb/devices/*/idVendor,idProduct (1a6e:089a before libedgetpu loads
               its firmware, 18d1:9302 after); PCIe/M.2 ROOT/dev/apex_0 (the gasket/apex driver)
  cpu          ROOT/proc/cpuinfo (x86 `flags`, ARM `Features`)
  governor     ROOT/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor (benchmark_model's warning)
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
ALWAYS, EDGETPU, NEVER = "always", "edgetpu", "never"  # when a failed check makes the device not ready

MIN_PYTHON = (3, 10)  # device/setup.cfg python_requires
SYSTEM_ROOT = Path("/")  # the default root of every read (a test may point it at a fake tree)
GOVERNOR_GLOB = "sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
# Coral USB Accelerator: Global Unichip's id until libedgetpu loads the firmware, then Google's
# (coral.ai/docs/accelerator/get-started, libedgetpu's udev rules).
CORAL_USB_IDS = {("1a6e", "089a"): "Coral USB Accelerator (firmware not loaded yet)",
                 ("18d1", "9302"): "Coral USB Accelerator"}
APEX_DEVICE = "dev/apex_0"  # PCIe / M.2 Coral, created by the gasket + apex kernel drivers
DEVICE_FIX = ("plug the USB Accelerator into a USB 3 port (and re-plug it after installing libedgetpu); "
              "for a PCIe/M.2 Coral install gasket-dkms and reboot (coral.ai/docs/m2/get-started)")
PERMISSION_FIX = ("add yourself to the group owning the device (plugdev for USB, through libedgetpu's udev "
                  "rules; apex for PCIe) and log in again")
LIBRARY_DIRS = ("usr/lib/aarch64-linux-gnu", "usr/lib/arm-linux-gnueabihf", "usr/lib/x86_64-linux-gnu",
                "usr/local/lib", "usr/lib", "lib")
LIBRARY_NAMES = ("libedgetpu.so.1", "libedgetpu.so.1.0")
DPKG_STATUS = "var/lib/dpkg/status"
EDGETPU_PACKAGES = {"libedgetpu1-std": "std (reduced clock)", "libedgetpu1-max": "max (maximum clock, runs hot)",
                    "libedgetpu1-legacy-std": "std (reduced clock, legacy)",
                    "libedgetpu1-legacy-max": "max (maximum clock, legacy)"}
# CPU flags that decide kernel speed (XNNPACK / ruy): shown when present, the key ones warned about when absent.
CPU_FLAGS = ("neon", "asimd", "asimddp", "asimdhp", "i8mm", "sse4_1", "avx2", "fma", "avx512f", "avx512_vnni",
             "avx_vnni", "amx_int8")


@dataclass
class Finding:
    status: str  # ok, warn, fail, info
    detail: str
    fix: str | None = None
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """What the checks read: `root` of the file system (tests: a fake tree) and whether the Edge TPU is asked."""

    root: Path = field(default_factory=lambda: SYSTEM_ROOT)
    edgetpu: bool = False

    def path(self, relative: str) -> Path:
        return self.root / relative

    def read(self, relative: str) -> str | None:
        return _text(self.path(relative))


def _text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _runtime_name() -> str | None:
    from .errors import TfedgeError
    from .runtime import get_runtime

    try:
        return get_runtime().name
    except TfedgeError:
        return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the checks --------------------------------------------------------------------------------------------
def check_python(probe: Probe) -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    detail = f"{platform.python_implementation()} {version} ({sys.executable})"
    if sys.version_info[:2] < MIN_PYTHON:
        return Finding(FAIL, detail, f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    return Finding(OK, detail, facts={"version": version})


def userland_finding(pointer_bits: int, platform_tag: str, architecture: str, kernel: str) -> Finding:
    """The word size and architecture wheels are chosen for, from the interpreter's facts (arguments, so a
    32-bit Raspberry Pi OS can be described on any machine)."""
    from .runtime import _NO_WHEELS_HINT, ARM32, userland

    arch = userland(pointer_bits, platform_tag)
    detail = f"{arch}, {pointer_bits}-bit userland ({platform_tag}, {architecture}; kernel {kernel})"
    facts = {"userland": arch, "pointer_bits": pointer_bits, "platform": platform_tag,
             "architecture": architecture, "kernel": kernel}
    if arch in ARM32:  # a warning: a runtime built elsewhere may still import (the runtime check decides)
        return Finding(WARN, detail, _NO_WHEELS_HINT, facts)
    if arch not in ("x86_64", "aarch64"):
        return Finding(WARN, detail, "LiteRT publishes wheels for x86_64 and aarch64 only", facts)
    return Finding(OK, detail, facts=facts)


def check_userland(probe: Probe) -> Finding:
    import struct
    import sysconfig

    return userland_finding(struct.calcsize("P") * 8, sysconfig.get_platform(), platform.architecture()[0],
                            platform.machine())


def _import_failure(runtime) -> str | None:
    """Why an installed runtime does not import (a wheel for another numpy, glibc or CPU), or None."""
    import importlib

    if runtime.version == "unknown":  # not installed: nothing to explain
        return None
    try:
        importlib.import_module(runtime.module)
    except ImportError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return f"{runtime.distribution} {runtime.version} is installed but does not import: {first}"
    return None


def check_runtime(probe: Probe) -> Finding:
    from .errors import TfedgeError
    from .runtime import RUNTIMES, get_runtime

    try:
        runtime = get_runtime()
    except TfedgeError as err:
        broken = [why for why in map(_import_failure, RUNTIMES) if why]
        if broken:
            return Finding(FAIL, f"{err.message}; {'; '.join(broken)}",
                           "see the numpy line, or reinstall the runtime for this Python (pip install "
                           "--force-reinstall ai-edge-litert)")
        return Finding(FAIL, err.message, err.hint)
    detail = f"{runtime.name} {runtime.version} ({runtime.distribution})"
    facts = {"runtime": runtime.name, "version": runtime.version}
    if runtime.limitations:
        return Finding(WARN, f"{detail}; cannot load: {runtime.limitations}",
                       "pip install ai-edge-litert (used first when installed)", facts)
    return Finding(OK, f"{detail}; no known limitation", facts=facts)


def installed(distribution: str, requirement: str, needed_for: str) -> Finding:
    version = _version(distribution)
    if version is None:
        return Finding(FAIL, f"{distribution} is not installed ({needed_for})", f"pip install '{requirement}'")
    return Finding(OK, f"{distribution} {version}", facts={"version": version})


def check_numpy(probe: Probe) -> Finding:
    found, tflite_runtime = installed("numpy", "numpy>=1.23", "every tensor"), _version("tflite-runtime")
    if found.status == OK and int(found.facts["version"].split(".")[0]) >= 2 and tflite_runtime \
            and _runtime_name() != "litert":
        return Finding(FAIL, f"{found.detail} with tflite-runtime {tflite_runtime}, which was built against "
                             "numpy 1 and does not import under numpy 2",
                       "pip install 'numpy<2', or use ai-edge-litert", found.facts)
    return found


def check_pillow(probe: Probe) -> Finding:
    return installed("pillow", "pillow>=9", "images cannot be read")


def find_libedgetpu(probe: Probe) -> list[str]:
    """Paths of the Edge TPU runtime under the root (the known library folders), real paths resolved."""
    found = []
    for folder in LIBRARY_DIRS:
        for name in LIBRARY_NAMES:
            path = probe.path(folder) / name
            if path.exists() and str(path.resolve()) not in found:
                found.append(str(path.resolve()))
    if not found and probe.root == Path("/"):  # the loader's cache describes the real root only
        import ctypes.util

        soname = ctypes.util.find_library("edgetpu")  # ldconfig's cache: any folder the loader searches
        found += [soname] if soname else []
    return found


def dpkg_packages(probe: Probe, names) -> dict[str, str]:
    """{package: version} of the installed packages among `names`, from the dpkg status file."""
    installed = {}
    for stanza in (probe.read(DPKG_STATUS) or "").split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.MULTILINE))
        if fields.get("Package") in names and "installed" in fields.get("Status", "").split():
            installed[fields["Package"]] = fields.get("Version", "?")
    return installed


def check_libedgetpu(probe: Probe) -> Finding:
    from .runtime import EDGETPU_INSTALL_HINT

    paths = find_libedgetpu(probe)
    packages = dpkg_packages(probe, EDGETPU_PACKAGES)
    facts = {"paths": paths, "packages": packages}
    if not paths:
        return Finding(FAIL, "libedgetpu.so.1 not found (looked in /usr/lib/<multiarch>, /usr/local/lib, "
                             "/usr/lib and ldconfig's cache)", EDGETPU_INSTALL_HINT, facts)
    flavour = "; ".join(f"{name} {version}: {EDGETPU_PACKAGES[name]}" for name, version in packages.items())
    if not flavour:
        flavour = "flavour unknown (no libedgetpu1-std/-max in the dpkg status: installed by hand?)"
    return Finding(OK, f"{', '.join(paths)}; {flavour}", facts=facts)


def check_delegate(probe: Probe) -> Finding:
    from . import runtime as runtimes
    from .errors import TfedgeError

    try:
        delegate = runtimes.load_edgetpu_delegate(runtimes.get_runtime())
    except TfedgeError as err:
        library_loads = runtimes.edgetpu_library_loads()[0]
        fix = DEVICE_FIX if library_loads else err.hint or runtimes.EDGETPU_INSTALL_HINT
        return Finding(FAIL, err.message, fix)
    del delegate  # release the device for the model that follows
    return Finding(OK, f"the Edge TPU delegate loads ({runtimes.edgetpu_library()})")


def coral_usb(probe: Probe) -> list[dict]:
    """Coral USB Accelerators in sysfs: [{id, name, bus path, usb device node, accessible}]."""
    found = []
    for device in sorted(glob.glob(str(probe.path("sys/bus/usb/devices") / "*"))):
        vendor, product, bus, number = ((_text(Path(device, name)) or "").strip().lower() for name in
                                        ("idVendor", "idProduct", "busnum", "devnum"))
        key = (vendor, product)
        if key not in CORAL_USB_IDS:
            continue
        numbers = [bus, number]
        node = probe.path(f"dev/bus/usb/{int(numbers[0]):03d}/{int(numbers[1]):03d}") \
            if all(n.isdigit() for n in numbers) else None
        found.append({"id": ":".join(key), "name": CORAL_USB_IDS[key], "sysfs": Path(device).name,
                      "node": str(node) if node else None,
                      "accessible": bool(node and node.exists() and os.access(node, os.R_OK | os.W_OK))})
    return found


def check_coral(probe: Probe) -> Finding:
    usb = coral_usb(probe)
    apex = probe.path(APEX_DEVICE)
    pcie = [{"node": str(apex), "accessible": os.access(apex, os.R_OK | os.W_OK)}] if apex.exists() else []
    facts = {"usb": usb, "pcie": pcie}
    if not usb and not pcie:
        return Finding(FAIL, "no Coral device (no USB 1a6e:089a or 18d1:9302 in /sys/bus/usb/devices, "
                             "no /dev/apex_0)", DEVICE_FIX, facts)
    names = [f"{d['name']} {d['id']} (usb {d['sysfs']})" for d in usb] + [f"PCIe Coral {d['node']}" for d in pcie]
    blocked = [d for d in usb + pcie if not d["accessible"]]
    if blocked:
        return Finding(WARN, f"{'; '.join(names)}; no read/write access to "
                             f"{', '.join(str(d['node']) for d in blocked)}",
                       PERMISSION_FIX, facts)
    return Finding(OK, "; ".join(names), facts=facts)


def cpu_info(text: str) -> dict:
    """/proc/cpuinfo -> {model, isa (x86 or arm, from the flags' key), flags (sorted, unique), cores}."""
    fields, flags = {}, set()
    for key, value in re.findall(r"^([^:\n]+?)\s*:[ \t]*(.*)$", text, re.MULTILINE):
        key = key.strip().lower()
        if key in ("flags", "features"):  # x86 says flags, ARM says Features
            flags.update(value.split())
        fields.setdefault(key, value.strip())
    isa = "x86" if "flags" in fields else "arm" if "features" in fields else None
    # x86: `model name` (its `model` is a number); a Raspberry Pi: `Model` names the board
    model = fields.get("model name") if isa == "x86" else fields.get("model") or fields.get("model name")
    return {"model": model or None, "isa": isa, "flags": sorted(flags),
            "cores": len(re.findall(r"^processor\s*:", text, re.MULTILINE))}


def check_cpu(probe: Probe) -> Finding:
    text = probe.read("proc/cpuinfo")
    if text is None:
        return Finding(INFO, "/proc/cpuinfo not readable: CPU features unknown")
    info = cpu_info(text)
    present = [flag for flag in CPU_FLAGS if flag in info["flags"]]
    detail = f"{info['model'] or 'unknown CPU'}, {info['cores']} cores; {' '.join(present) or 'no SIMD flags'}"
    facts = {**info, "simd": present}
    if info["isa"] == "arm" and not {"neon", "asimd"} & set(present):
        return Finding(WARN, detail, "no NEON/ASIMD: the runtime's ARM kernels run scalar (very slow)", facts)
    if info["isa"] == "x86" and "avx2" not in present:
        return Finding(WARN, detail, "no AVX2: XNNPACK's fast x86 kernels are unavailable", facts)
    return Finding(OK, detail, facts=facts)


def cpu_governors(root: str | Path | None = None) -> list[str]:
    """The CPU frequency governors in use (empty where cpufreq is not exposed, e.g. in many VMs)."""
    found = set()
    for path in glob.glob(str(Path(root or SYSTEM_ROOT) / GOVERNOR_GLOB)):
        governor = (_text(Path(path)) or "").strip()
        found.update([governor] if governor else [])
    return sorted(found)


GOVERNOR_FIX = "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"


def governor_warning(root: str | Path | None = None) -> str | None:
    """benchmark_model's advice: timings vary with frequency scaling unless the governor is `performance`."""
    governors = cpu_governors(root)
    if governors and governors != ["performance"]:
        return f"CPU frequency governor is {', '.join(governors)}, not performance: timings may vary"
    return None


def check_governor(probe: Probe) -> Finding:
    governors = cpu_governors(probe.root)
    if not governors:
        return Finding(INFO, "cpufreq not exposed (a VM or container): the governor is unknown")
    warning = governor_warning(probe.root)
    if warning:
        return Finding(WARN, f"{warning} (benchmark_model's warning)", GOVERNOR_FIX, {"governors": governors})
    return Finding(OK, "performance", facts={"governors": governors})


@dataclass(frozen=True)
class Check:
    name: str
    function: object  # Probe -> Finding
    required: str  # ALWAYS, EDGETPU or NEVER


CHECKS = (
    Check("python", check_python, ALWAYS),
    Check("userland", check_userland, ALWAYS),
    Check("runtime", check_runtime, ALWAYS),
    Check("numpy", check_numpy, ALWAYS),
    Check("pillow", check_pillow, ALWAYS),
    Check("cpu", check_cpu, NEVER),
    Check("governor", check_governor, NEVER),
    Check("libedgetpu", check_libedgetpu, EDGETPU),
    Check("delegate", check_delegate, EDGETPU),
    Check("coral", check_coral, EDGETPU),
)


def diagnose(probe: Probe, checks=CHECKS) -> dict:
    """Run every check: {ready, edgetpu, root, checks: [{name, status, required, detail, fix, facts}],
    missing: names of failed required checks}."""
    rows = []
    for check in checks:
        required = check.required == ALWAYS or (check.required == EDGETPU and probe.edgetpu)
        rows.append({"name": check.name, "required": required, **asdict(check.function(probe))})
    missing = [row["name"] for row in rows if row["required"] and row["status"] == FAIL]
    return {"ready": not missing, "edgetpu": probe.edgetpu, "root": str(probe.root), "missing": missing,
            "checks": rows}
