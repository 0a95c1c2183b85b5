"""tfedge-run doctor: on this machine for real (LiteRT present, no Edge TPU), and check by check on fake
/sys, /proc, /dev and /usr/lib trees built in tmp_path (files that look like a device's: test fixtures, not
doubles). The delegate check, which loads a native library, runs through the NoOpDelegateDouble at its one
seam where a loadable delegate is needed (edgetpu_models.py). The emulated Raspberry Pi 4 run is in
test_device_emulator.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import struct
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT, assert_clean_error, without_module
from edgetpu_models import replace_delegate_loader
from tfedge_device import doctor
from tfedge_device.doctor import Probe

PI4_CPUINFO = ROOT / "tools" / "pi_emulator" / "cpuinfo-raspberry-pi-4"
NAMES = ["python", "userland", "runtime", "numpy", "pillow", "cpu", "governor", "libedgetpu", "delegate", "coral"]


def write(root: Path, relative: str, text: str = "") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def usb_device(root: Path, sysfs_name: str, vendor: str, product: str, bus: int = 2, number: int = 3,
               node: bool = True) -> None:
    """/sys/bus/usb/devices/NAME/{idVendor,idProduct,busnum,devnum} and, with `node`, /dev/bus/usb/BBB/DDD."""
    for key, value in (("idVendor", vendor), ("idProduct", product), ("busnum", bus), ("devnum", number)):
        write(root, f"sys/bus/usb/devices/{sysfs_name}/{key}", f"{value}\n")
    if node:
        write(root, f"dev/bus/usb/{bus:03d}/{number:03d}")


def rows(report: dict) -> dict:
    return {row["name"]: row for row in report["checks"]}


# -- this machine ---------------------------------------------------------------------------------------------
def test_this_machine_is_ready_for_cpu_inference(tfedge_run):
    result = tfedge_run("doctor", "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["ready"] is True and report["edgetpu"] is False and report["missing"] == []
    assert [row["name"] for row in report["checks"]] == NAMES
    assert all(set(row) == {"name", "required", "status", "detail", "fix", "facts"} for row in report["checks"])
    checks = rows(report)
    assert checks["runtime"]["status"] == "ok" and checks["runtime"]["facts"] == {
        "runtime": "litert", "version": importlib.metadata.version("ai-edge-litert")}
    assert checks["numpy"]["facts"]["version"] == importlib.metadata.version("numpy")
    assert checks["pillow"]["facts"]["version"] == importlib.metadata.version("pillow")
    bits = struct.calcsize("P") * 8
    assert checks["userland"]["facts"]["pointer_bits"] == bits == 64
    assert checks["userland"]["facts"]["userland"] == sysconfig.get_platform().split("-", 1)[1]
    assert checks["cpu"]["facts"]["isa"] in ("x86", "arm") and checks["cpu"]["facts"]["cores"] >= 1
    # no libedgetpu here: reported, not required without --edgetpu
    assert checks["libedgetpu"]["status"] == "fail" and checks["libedgetpu"]["required"] is False
    text = tfedge_run("doctor")
    assert text.returncode == 0 and text.stdout.splitlines()[-1].startswith("ready for CPU inference: yes"), text
    assert "no    libedgetpu" in text.stdout and "apt-get install libedgetpu1-std" in text.stdout


def test_edgetpu_required_here_is_exit_3_with_the_fixes(tfedge_run):
    result = tfedge_run("doctor", "--edgetpu")
    assert_clean_error(result, 3, "not ready: libedgetpu, delegate, coral failed")
    assert "FAIL  libedgetpu  libedgetpu.so.1 not found" in result.stdout
    assert "fix: install the Edge TPU runtime" in result.stdout and "gasket-dkms" in result.stdout
    assert result.stdout.splitlines()[-1] == "ready for inference with the Edge TPU: no"
    report = json.loads(tfedge_run("doctor", "--edgetpu", "--json").stdout)
    assert report["ready"] is False and report["missing"] == ["libedgetpu", "delegate", "coral"]


def test_a_missing_runtime_is_exit_3_naming_it(tfedge_run, tmp_path):
    # tflite_runtime unimportable whether or not it is installed here
    env = {"TFEDGE_RUNTIME": "tflite-runtime", **without_module(tmp_path, "tflite_runtime")}
    result = tfedge_run("doctor", env=env)
    assert_clean_error(result, 3, "not ready: runtime failed")
    assert "FAIL  runtime     runtime tflite-runtime is not installed" in result.stdout
    assert "fix: pip install tflite-runtime" in result.stdout


def test_numpy_2_with_tflite_runtime_fails(tmp_path, monkeypatch):
    """tflite-runtime 2.14 was built against numpy 1; a dist-info folder makes it 'installed' (no wheel
    for Python 3.11 + numpy 2 exists to install for real)."""
    from tfedge_device import runtime

    write(tmp_path, "tflite_runtime-2.14.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tflite-runtime\n"
                                                                   "Version: 2.14.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert doctor.check_numpy(Probe()).status == "ok"  # LiteRT is the runtime in use: numpy 2 is fine
    monkeypatch.setenv("TFEDGE_RUNTIME", "tflite-runtime")
    runtime.get_runtime.cache_clear()
    try:
        finding = doctor.check_numpy(Probe())
    finally:
        runtime.get_runtime.cache_clear()
    assert finding.status == "fail" and "tflite-runtime 2.14.0" in finding.detail and "numpy<2" in finding.fix


# -- the word size of the userland ------------------------------------------------------------------------------
@pytest.mark.parametrize("bits, tag, architecture, kernel, userland, status", [
    (32, "linux-aarch64", "32bit", "aarch64", "armv8l", "warn"),  # 32-bit Pi OS, 64-bit kernel
    (32, "linux-armv7l", "32bit", "armv7l", "armv7l", "warn"),  # 32-bit Pi OS, 32-bit kernel
    (64, "linux-aarch64", "64bit", "aarch64", "aarch64", "ok"),  # 64-bit Pi OS
    (32, "linux-x86_64", "32bit", "x86_64", "i686", "warn"),
    (64, "linux-x86_64", "64bit", "x86_64", "x86_64", "ok"),
])
def test_userland_comes_from_the_interpreter_not_the_kernel(bits, tag, architecture, kernel, userland, status):
    finding = doctor.userland_finding(bits, tag, architecture, kernel)
    assert finding.facts["userland"] == userland and finding.status == status
    assert f"{bits}-bit userland" in finding.detail and f"kernel {kernel}" in finding.detail
    if userland.startswith("armv"):  # the fix names the way out: no LiteRT wheels for 32-bit ARM
        assert "no wheels for 32-bit ARM" in finding.fix and "64-bit Raspberry Pi OS" in finding.fix


# -- fake device trees -----------------------------------------------------------------------------------------
def test_coral_usb_present_before_and_after_firmware_and_absent(tmp_path):
    usb_device(tmp_path, "1-1", "1d6b", "0002", bus=1, number=1)  # a root hub: not a Coral
    absent = doctor.check_coral(Probe(tmp_path))
    assert absent.status == "fail" and "no Coral device" in absent.detail and "USB 3 port" in absent.fix
    usb_device(tmp_path, "2-1", "1a6e", "089a", bus=2, number=3)
    found = doctor.check_coral(Probe(tmp_path))
    assert found.status == "ok" and found.detail == "Coral USB Accelerator (firmware not loaded yet) 1a6e:089a (usb 2-1)"
    assert found.facts["usb"][0]["node"] == str(tmp_path / "dev/bus/usb/002/003")
    usb_device(tmp_path, "2-1", "18d1", "9302", bus=2, number=4, node=False)  # re-enumerated, no access
    after = doctor.check_coral(Probe(tmp_path))
    assert after.status == "warn" and after.detail.startswith("Coral USB Accelerator 18d1:9302 (usb 2-1)")
    assert "plugdev" in after.fix


def test_pcie_coral_apex_0(tmp_path):
    write(tmp_path, "dev/apex_0")
    finding = doctor.check_coral(Probe(tmp_path))
    assert finding.status == "ok" and finding.detail == f"PCIe Coral {tmp_path / 'dev/apex_0'}"


def test_governor_powersave_warns_performance_passes_none_is_unknown(tmp_path):
    assert doctor.check_governor(Probe(tmp_path)).status == "info"
    for cpu in (0, 1):
        write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "powersave\n")
    finding = doctor.check_governor(Probe(tmp_path))
    assert finding.status == "warn" and "governor is powersave, not performance" in finding.detail
    assert "echo performance | sudo tee" in finding.fix
    for cpu in (0, 1):
        write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "performance\n")
    assert doctor.check_governor(Probe(tmp_path)).status == "ok"


def test_cpu_features_of_a_pi4_a_pi_zero_and_an_old_x86(tmp_path):
    write(tmp_path, "proc/cpuinfo", PI4_CPUINFO.read_text())
    pi4 = doctor.check_cpu(Probe(tmp_path))
    assert pi4.status == "ok" and pi4.facts["model"] == "Raspberry Pi 4 Model B Rev 1.1"
    assert pi4.facts["isa"] == "arm" and pi4.facts["simd"] == ["asimd"] and pi4.facts["cores"] == 4
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\n"
                                    "Features\t: half thumb fastmult vfp edsp java tls\n\nModel\t: Raspberry Pi "
                                    "Zero W Rev 1.1\n")
    zero = doctor.check_cpu(Probe(tmp_path))
    assert zero.status == "warn" and "NEON" in zero.fix and zero.facts["model"] == "Raspberry Pi Zero W Rev 1.1"
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel\t\t: 58\nmodel name\t: Intel(R) Core(TM) i5-3470\n"
                                    "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx\n")
    old = doctor.check_cpu(Probe(tmp_path))
    assert old.status == "warn" and "AVX2" in old.fix and old.facts["model"] == "Intel(R) Core(TM) i5-3470"


DPKG_STATUS = """Package: libc6
Status: install ok installed
Version: 2.36-9

Package: libedgetpu1-max
Status: install ok installed
Architecture: arm64
Version: 16.0
"""


def test_libedgetpu_found_with_its_flavour_from_dpkg(tmp_path):
    assert doctor.check_libedgetpu(Probe(tmp_path)).status == "fail"
    library = write(tmp_path, "usr/lib/aarch64-linux-gnu/libedgetpu.so.1.0")
    (library.parent / "libedgetpu.so.1").symlink_to(library.name)
    unknown = doctor.check_libedgetpu(Probe(tmp_path))
    assert unknown.status == "ok" and unknown.facts["paths"] == [str(library)] and "flavour unknown" in unknown.detail
    write(tmp_path, "var/lib/dpkg/status", DPKG_STATUS)
    finding = doctor.check_libedgetpu(Probe(tmp_path))
    assert finding.facts["packages"] == {"libedgetpu1-max": "16.0"} and "libedgetpu1-max 16.0: max" in finding.detail
    write(tmp_path, "var/lib/dpkg/status", DPKG_STATUS.replace("install ok installed\nArchitecture",
                                                               "deinstall ok config-files\nArchitecture"))
    assert doctor.check_libedgetpu(Probe(tmp_path)).facts["packages"] == {}  # removed: its config only


def test_edge_tpu_items_are_required_only_with_edgetpu(tmp_path, monkeypatch):
    """A fake Pi with libedgetpu and a Coral: without a loadable delegate it is not ready for the Edge TPU;
    with the delegate double at the seam it is. Without --edgetpu the Edge TPU lines never block."""
    write(tmp_path, "usr/lib/aarch64-linux-gnu/libedgetpu.so.1")
    usb_device(tmp_path, "2-1", "18d1", "9302")
    real = doctor.diagnose(Probe(tmp_path, edgetpu=True))
    assert real["ready"] is False and real["missing"] == ["delegate"]  # this machine cannot load libedgetpu
    assert rows(real)["libedgetpu"]["status"] == rows(real)["coral"]["status"] == "ok"
    assert doctor.diagnose(Probe(tmp_path, edgetpu=False))["ready"] is True
    assert doctor.diagnose(Probe(tmp_path / "empty", edgetpu=False))["ready"] is True
    doubles = replace_delegate_loader(monkeypatch)
    ready = doctor.diagnose(Probe(tmp_path, edgetpu=True))
    assert ready["ready"] is True and rows(ready)["delegate"]["status"] == "ok" and len(doubles) == 1


def test_no_runtime_on_a_32_bit_arm_userland_says_to_install_the_64_bit_os(monkeypatch):
    """A 32-bit userland cannot exist here: the userland reading and the runtimes' absence are replaced."""
    from tfedge_device import runtime

    monkeypatch.setattr(runtime, "_importable", lambda candidate: False)
    runtime.get_runtime.cache_clear()
    try:
        for userland, words in (("armv8l", "64-bit Raspberry Pi OS"), ("x86_64", "pip install ai-edge-litert")):
            monkeypatch.setattr(runtime, "this_userland", lambda userland=userland: userland)
            finding = doctor.check_runtime(Probe())
            assert finding.status == "fail" and "no TFLite runtime is installed" in finding.detail
            assert words in finding.fix, (userland, finding)
    finally:
        runtime.get_runtime.cache_clear()


def test_an_installed_runtime_that_does_not_import_says_why(tmp_path):
    """numpy made unimportable in a child process (as a numpy the wheel was not built for would be)."""
    import os
    import subprocess
    import sys

    script = ("import sys; sys.modules['numpy'] = None\n"
              "from tfedge_device.cli import main\nsys.exit(main(['doctor']))")
    path = os.pathsep.join([str(ROOT / "device"), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": path}, timeout=120)
    assert result.returncode == 3, result
    version = importlib.metadata.version("ai-edge-litert")
    assert f"ai-edge-litert {version} is installed but does not import: import of numpy halted" in result.stdout
    assert result.stderr.strip() == "tfedge-run: error: not ready: runtime failed (hint: see the fix printed for " \
                                    "each FAIL line)"
