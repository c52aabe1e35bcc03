"""The Kotlin side, run from pytest so one command runs every test.

* posecore (pure Kotlin): JUnit tests through Maven, including golden vectors that python_ref writes
  here from real images and converted models (float and int8) - the Kotlin fast decoder must find
  the same people, joints within 0.01 px, scores within 1e-4.
* the Android app: every Kotlin source compiled against Android and LiteRT API jars (Maven Central).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

GOLDEN_IMAGES = ["crowdpose/images/103319.jpg", "crowdpose/images/106848.jpg", "coco/images/000000196141.jpg",
                 "coco/images/000000197388.jpg", "aic/images/054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg",
                 "people/astronaut.png", "people/grace_hopper.jpg"]


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        if os.environ.get("CI"):
            pytest.fail("Maven (mvn) is needed for the Kotlin tests")
        pytest.skip("Maven (mvn) not installed")
    return mvn


def _run_maven(args: list[str], what: str) -> None:
    proc = subprocess.run([_mvn(), "-B", "-ntp", *args], cwd=REPO, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-80:])
    assert proc.returncode == 0, f"{what} failed:\n{tail}"
    print(tail)


@pytest.fixture(scope="session")
def golden_dir(shared_dir, converted_model):
    """Real golden cases: LitePose-M (real weights) fp32 at 448x448, XS (random weights) int8 with int8
    outputs, so the Kotlin side dequantises real raw outputs too, and L (random weights, 17 COCO joints)."""
    from python_ref.golden import export_golden_for_model

    out = REPO / "golden"
    if out.exists():
        shutil.rmtree(out)
    images = [str(shared_dir / "data" / p) for p in GOLDEN_IMAGES]
    m_fp32 = converted_model("litepose-auto-m-crowdpose-448.pth", "448x448", "fp32")
    xs_int8 = converted_model("litepose-xs-crowdpose-random.pth", "256x320", "int8", calib_count=8,
                              output_dtype="int8")
    l_coco = converted_model("litepose-l-coco-random.pth", "192x256", "fp32")   # 17 COCO joints
    cases = export_golden_for_model(m_fp32, images, out, prefix="m-fp32")
    cases += export_golden_for_model(xs_int8, images[:3], out, prefix="xs-random-int8")
    assert all("quantization" in json.loads(c.read_text()) for c in cases[-3:])  # raw int8 outputs included
    cases += export_golden_for_model(l_coco, images[2:4], out, prefix="l-coco-random-fp32")
    assert len(cases) == len(images) + 5
    return out


@pytest.mark.needs_shared
@pytest.mark.slow
def test_posecore_junit_with_golden_vectors(golden_dir):
    _run_maven(["-f", "android_demo/posecore/pom.xml", "test", f"-Dlitepose.golden={golden_dir}"],
               "posecore JUnit tests")


@pytest.mark.slow
def test_android_app_compiles_against_android_and_litert_apis():
    _run_maven(["-f", "android_demo/compile-check/pom.xml", "verify"], "Android app compile check")
