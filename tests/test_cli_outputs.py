"""What the commands write, and what they refuse to write: normal file modes, no input overwritten by an
output, no partial set of files after a failure, folders as image arguments, one-line usage errors."""
from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import sys

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import _Group, main
from python_ref.errors import LitePoseError
from python_ref.io_utils import (atomic_path, check_distinct, check_output_location, images_in_folder,
                                 staged_outputs, write_text_atomic)
from python_ref.keypoints import CROWDPOSE_JOINTS


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _image(path, seed=0, hw=(96, 128)):
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8))
    return path


# ---- io_utils --------------------------------------------------------------------------------------

def test_atomic_files_get_the_umask_mode_or_keep_the_replaced_files_mode(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "new.json", "{}")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640  # 0666 & ~027, not mkstemp's 0600
        existing = tmp_path / "existing.json"
        existing.write_text("old")
        os.chmod(existing, 0o604)
        with atomic_path(existing) as tmp:
            tmp.write_text("new")
        assert existing.read_text() == "new" and stat.S_IMODE(existing.stat().st_mode) == 0o604
    finally:
        os.umask(old)


def test_folders_are_searched_through_symlinks_each_real_folder_once(tmp_path):
    shots = tmp_path / "shots"
    (shots / "day1").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _image(shots / "day1" / "a.jpg")
    _image(elsewhere / "b.png")
    (elsewhere / "notes.txt").write_text("not an image")
    (shots / "linked").symlink_to(elsewhere, target_is_directory=True)
    (shots / "day1" / "loop").symlink_to(shots, target_is_directory=True)  # a link back up the tree
    (shots / "._a.jpg").write_bytes(b"\0\5\x16\7")  # a macOS resource fork
    found = [p.relative_to(shots).as_posix() for p in images_in_folder(shots)]
    assert found == ["day1/a.jpg", "linked/b.png"]


def _with_filtered_stderr(body: str, **env):
    import subprocess

    code = "import os, sys\nfrom python_ref.io_utils import filter_native_stderr\nfilter_native_stderr()\n" + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env={**os.environ, **env})


def test_native_start_up_lines_are_dropped_and_everything_else_passes_in_order():
    done = _with_filtered_stderr(
        'os.write(2, b"I0000 00:00:1795691288.909787   30672 port.cc:153] oneDNN custom operations are on.\\n")\n'
        'os.write(2, b"W0000 00:00:1795691288.9 30672 loader.cc:12] a real warning\\n")\n'
        'os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")\n'
        'print("python-level message", file=sys.stderr, flush=True)\n'
        'os.write(2, b"fully_quantize: 0, inference_type: 6, input_inference_type: UINT8\\n")\n'
        'sys.stderr.write("no newline at the end")\n')
    assert done.returncode == 0
    assert done.stderr == ("W0000 00:00:1795691288.9 30672 loader.cc:12] a real warning\npython-level message\n"
                           "no newline at the end")
    assert _with_filtered_stderr('os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")\n',
                                 LITEPOSE_RAW_STDERR="1").stderr.startswith("INFO: Created")


def test_a_native_crash_still_shows_its_last_words():
    done = _with_filtered_stderr('os.write(2, b"F0000 00:00:17.1 1 cpu.cc:1] Check failed: no AVX\\n")\nos.abort()\n')
    assert done.returncode != 0 and "Check failed: no AVX" in done.stderr


def test_the_litepose_command_imports_tensorflow_without_its_start_up_lines():
    from importlib.metadata import entry_points

    assert entry_points(group="console_scripts")["litepose"].value == "converter.cli:run"
    done = _with_filtered_stderr("os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\nimport tensorflow as tf\n"
                                 "print('imported', tf.add(1, 2).numpy())\n")
    assert done.returncode == 0 and "imported 3" in done.stdout, done.stderr
    assert "oneDNN" not in done.stderr and "cuda" not in done.stderr and "absl" not in done.stderr, done.stderr


def test_check_distinct_refuses_an_output_on_an_input(tmp_path):
    check_distinct({"out": tmp_path / "a.json"}, {"in": tmp_path / "b.json", "unused": None})
    with pytest.raises(LitePoseError, match="would overwrite the results file"):
        check_distinct({"--json output": tmp_path / "sub" / ".." / "r.json"}, {"results file": tmp_path / "r.json"})
    with pytest.raises(LitePoseError, match="would overwrite the overlay"):
        check_distinct({"overlay": tmp_path / "x.jpg", "--json output": tmp_path / "x.jpg"}, {})


# ---- the CLI group ---------------------------------------------------------------------------------

def test_usage_errors_are_one_line(tmp_path):
    r = invoke(["convert", "--output", tmp_path / "m.tflite"])
    assert r.exit_code == 2
    assert _error_line(r).startswith("Error: Missing option '--checkpoint'. (see ") and "convert --help)" in r.output
    assert "Usage:" not in r.output


def test_a_missing_optional_package_is_one_line_naming_what_to_install():
    group = _Group(name="litepose")

    @group.command("needs-tf")
    def needs_tf():
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    @group.command("needs-keras")
    def needs_keras():
        raise ModuleNotFoundError("No module named 'keras'", name="keras")

    @group.command("broken")
    def broken():
        raise ModuleNotFoundError("No module named 'a_typo'", name="a_typo")

    r = CliRunner().invoke(group, ["needs-tf"])
    assert r.exit_code == 1
    line = _error_line(r)
    assert "`litepose needs-tf` needs TensorFlow" in line and "pip install '.[convert]'" in line
    assert "litepose-edge[" not in line   # not on PyPI: name the install that works
    r = CliRunner().invoke(group, ["needs-keras"])  # Keras comes with TensorFlow: one name for one install
    assert "`litepose needs-keras` needs TensorFlow" in _error_line(r)
    r = CliRunner().invoke(group, ["broken"])  # a bug, not a missing extra: not disguised as one
    assert isinstance(r.exception, ModuleNotFoundError)


def test_a_broken_optional_package_is_one_line_naming_it(tmp_path):
    """Installed but failing inside its own import (built against another numpy, a missing sub-dependency)."""
    import importlib.util

    package = tmp_path / "site" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('numpy.core.multiarray failed to import')\n")
    (package / "sub.py").write_text("import a_missing_dependency\n")
    group = _Group(name="litepose")

    def load(name):
        spec = importlib.util.spec_from_file_location(f"fake_{name}", package / f"{name}.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))

    group.command("init")(lambda: load("__init__"))
    group.command("sub")(lambda: load("sub"))
    group.command("ours")(lambda: exec("raise ImportError('a bug in our own import')"))
    for command, cause in (("init", "numpy.core.multiarray failed to import"),
                           ("sub", "No module named 'a_missing_dependency'")):
        r = CliRunner().invoke(group, [command])
        assert r.exit_code == 1, r.output
        line = _error_line(r)
        assert f"`litepose {command}` needs tensorflow, which is installed but fails to import ({cause})" in line
    r = CliRunner().invoke(group, ["ours"])
    assert isinstance(r.exception, ImportError)


# ---- predict ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def xs_tflite(converted_model):
    return converted_model("litepose-xs-crowdpose-random.pth", "128x128", "fp32")


@pytest.mark.needs_shared
def test_predict_takes_folders_and_writes_to_stdout(xs_tflite, tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    b = _image(tmp_path / "imgs" / "b.png", 1)
    a = _image(tmp_path / "imgs" / "sub" / "a.jpg", 2)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    r = CliRunner().invoke(main, ["predict", "--model", str(xs_tflite), str(tmp_path / "imgs"), "--json", "-"])
    assert r.exit_code == 0, r.output
    from_folder = json.loads(r.stdout)
    r = invoke(["predict", "--model", xs_tflite, b, a, "--json", tmp_path / "out.json"])
    assert r.exit_code == 0, r.output
    one_by_one = json.loads((tmp_path / "out.json").read_text())
    assert from_folder == one_by_one and len(one_by_one) > 0  # same images, same order (sorted by path)
    cut = float(np.median([e["score"] for e in one_by_one]))
    r = invoke(["predict", "--model", xs_tflite, b, a, "--json", tmp_path / "confident.json",
                "--min-person-score", cut])
    assert r.exit_code == 0, r.output
    confident = json.loads((tmp_path / "confident.json").read_text())
    assert confident == [e for e in one_by_one if e["score"] >= cut] and 0 < len(confident) < len(one_by_one)
    r = invoke(["predict", "--model", xs_tflite, tmp_path / "empty", "--json", tmp_path / "o.json"])
    assert r.exit_code == 1 and "no image files" in _error_line(r)
    for _ in range(2):  # overlays drawn into the input folder are not read back as inputs the next time
        r = invoke(["predict", "--model", xs_tflite, tmp_path / "imgs", "--json", tmp_path / "o.json",
                    "--draw", tmp_path / "imgs" / "drawn"])
        assert r.exit_code == 0 and "2 image(s)" in r.output, r.output


@pytest.mark.needs_shared
def test_the_command_works_with_stdout_and_stderr_closed(xs_tflite, tmp_path):
    import subprocess

    image, out = _image(tmp_path / "a.png"), tmp_path / "out.json"
    code = f"import sys; sys.argv = ['litepose', 'predict', '--model', {str(xs_tflite)!r}, {str(image)!r}, " \
           f"'--json', {str(out)!r}]\nfrom converter.cli import run\nrun()"

    def close_stdout_and_stderr():  # as `litepose ... >&- 2>&-` starts it
        os.close(1)
        os.close(2)

    done = subprocess.run([sys.executable, "-c", code], preexec_fn=close_stdout_and_stderr, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0 and len(json.loads(out.read_text())) > 0


@pytest.mark.needs_shared
def test_data_for_a_closed_stdout_is_an_error_not_lost(xs_tflite, tmp_path):
    """`--json -` under `>&-`: the command pointed fd 1 at /dev/null for its status lines, so the poses would
    vanish with exit 0; it refuses before the work instead (stderr still open here, to read the error)."""
    import subprocess

    image = _image(tmp_path / "a.png")
    code = f"import sys; sys.argv = ['litepose', 'predict', '--model', {str(xs_tflite)!r}, {str(image)!r}, " \
           "'--json', '-']\nfrom converter.cli import run\nrun()"
    done = subprocess.run([sys.executable, "-c", code], preexec_fn=lambda: os.close(1), timeout=300,
                          stderr=subprocess.PIPE, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == 1 and len(errors) == 1 and "standard output was closed" in errors[0], done.stderr
    assert "image(s)" not in done.stderr   # refused before the model ran


@pytest.mark.needs_shared
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_sigterm_ends_the_command_through_its_cleanup(xs_tflite, tmp_path):
    """SIGTERM (kill, timeout, a cancelled CI job) becomes an exit through every `with` block, as Ctrl-C
    does, instead of ending the process on the spot with its scratch folders left behind: exit 143."""
    import signal
    import time

    fifo = tmp_path / "poses.fifo"
    os.mkfifo(fifo)
    code = f"import sys; sys.argv = ['litepose', 'predict', '--model', {str(xs_tflite)!r}, " \
           f"{str(_image(tmp_path / 'a.png'))!r}, '--json', {str(fifo)!r}]\nfrom converter.cli import run\nrun()"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:   # the poses are ready and it waits for a reader of the FIFO
            lines.append(proc.stderr.readline())
            if "waiting for a reader" in lines[-1] or not lines[-1]:
                break
        assert "waiting for a reader" in lines[-1], lines
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Terminated" in rest and "Traceback" not in rest, rest


@pytest.mark.needs_shared
def test_predict_image_names_the_shape_it_was_given(xs_tflite):
    """A device script passing a grayscale or RGBA array hears about its own array, not the letterboxed one."""
    from python_ref import DeployedModel, load_results, predict_image

    model = DeployedModel(xs_tflite)
    for shape in ((40, 60), (40, 60, 4), (0, 60, 3)):
        with pytest.raises(ValueError, match=re.escape(f"got {shape}")):
            predict_image(model, np.zeros(shape, np.uint8))
    poses, scores = predict_image(model, np.zeros((40, 60, 3), np.uint8))
    assert poses.shape[1:] == (14, 3) and len(scores) == len(poses)
    assert callable(load_results)   # with evaluate_keypoints, scoring from Python needs it


@pytest.mark.needs_shared
def test_decoder_complaints_do_not_join_the_one_error_line(xs_tflite, tmp_path):
    """A truncated PNG (an interrupted copy) and a float TIFF get our one error line, without libpng's
    "libpng error: ..." or OpenCV's "[ WARN ...]" lines that the decoders print to fd 2 themselves."""
    ok, png = cv2.imencode(".png", np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(png.tobytes()[:400])
    ok, tiff = cv2.imencode(".tiff", np.random.default_rng(2).random((16, 16, 3)).astype(np.float32))
    (tmp_path / "float.tiff").write_bytes(tiff.tobytes())
    for name in ("cut.png", "float.tiff"):
        code = f"import sys; sys.argv = ['litepose', 'predict', '--model', {str(xs_tflite)!r}, " \
               f"{str(tmp_path / name)!r}, '--json', {str(tmp_path / 'p.json')!r}]\nfrom converter.cli import run\nrun()"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and lines[-1].startswith(f"Error: {tmp_path / name}"), done.stderr
        assert not any("libpng" in line or "WARN" in line for line in lines), done.stderr


def test_an_output_path_ending_in_a_slash_names_a_folder(tmp_path):
    """`--json out/` (out missing) used to write a file called `out`; `--output m.tflite/` a file m.tflite."""
    from converter.convert import check_output_path

    image = _image(tmp_path / "a.png")
    r = invoke(["predict", "--model", tmp_path / "m.tflite", image, "--json", f"{tmp_path}/out/"])
    assert r.exit_code == 1 and "names a folder" in _error_line(r)
    assert not (tmp_path / "out").exists()
    for name in ("m.tflite/", "sub/m.tflite/"):
        with pytest.raises(LitePoseError, match="names a folder"):
            check_output_path(f"{tmp_path}/{name}", ".tflite")
    with pytest.raises(LitePoseError, match="names a folder"):
        write_text_atomic(f"{tmp_path}/report/", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_data_and_tables_for_a_closed_stdout_and_folders_as_files_are_refused(tmp_path, monkeypatch):
    """Under `>&-` (fd 1 noted closed at start) evaluate's table and every `--json -` are refused before the
    work; a folder given as bench-decoder's --json is refused before the benchmark runs."""
    from python_ref import io_utils

    monkeypatch.setattr(io_utils, "CLOSED_AT_START", {1})
    ann, res = tmp_path / "a.json", tmp_path / "r.json"
    ann.write_text("{}")
    res.write_text("[]")
    for args in (["evaluate", "--annotations", ann, "--results", res],
                 ["evaluate", "--annotations", ann, "--results", res, "--json", "-"],
                 ["bench-decoder", "--json", "-"]):
        r = invoke(args)
        assert r.exit_code == 1 and "standard output was closed" in _error_line(r), (args, r.output)
    monkeypatch.setattr(io_utils, "CLOSED_AT_START", set())
    r = invoke(["bench-decoder", "--json", tmp_path])
    assert r.exit_code == 1 and "is a folder" in _error_line(r)


def test_calibration_folders_leave_out_litepose_overlays(tmp_path):
    from converter.calibration import calibration_candidates
    from python_ref.draw import tag_overlay

    _image(tmp_path / "a.png")
    _image(tmp_path / "a_pose.jpg")                                    # the user's own, untagged: an image
    (tmp_path / "b_pose.jpg").write_bytes(tag_overlay(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()))
    said = []
    found = calibration_candidates([tmp_path], log=said.append)
    assert sorted(c["file"] for c in found) == ["a.png", "a_pose.jpg"]
    assert len(said) == 1 and "1 overlay(s)" in said[0]


def test_overlays_are_tagged_and_still_decode(tmp_path):
    """JPEG (predict) and PNG (validate) overlays carry the tag; the pixels decode as before; a user's image,
    a PNG with another text chunk included, is not taken for an overlay."""
    from python_ref.draw import is_litepose_overlay, tag_overlay

    pixels = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for ext in (".png", ".jpg"):
        ok, encoded = cv2.imencode(ext, pixels)
        plain, tagged = tmp_path / f"plain{ext}", tmp_path / f"tagged{ext}"
        plain.write_bytes(encoded.tobytes())
        tagged.write_bytes(tag_overlay(encoded.tobytes()))
        assert is_litepose_overlay(tagged) and not is_litepose_overlay(plain)
        np.testing.assert_array_equal(cv2.imread(str(tagged)), cv2.imread(str(plain)))
    import zlib

    png = cv2.imencode(".png", pixels)[1].tobytes()
    for text in (b"Software\x00litepose-edge overlay, edited", b"Author\x00 litepose-edge overlay"):
        chunk = b"tEXt" + text   # a valid text chunk of the user's own, where the tag would be
        user = png[:33] + len(text).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + png[33:]
        (tmp_path / "user.png").write_bytes(user)
        assert cv2.imread(str(tmp_path / "user.png")) is not None and not is_litepose_overlay(tmp_path / "user.png")
    jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
    comment = b"litepose-edge overlay of mine"
    (tmp_path / "user.jpg").write_bytes(jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
                                        + jpeg[2:])
    assert cv2.imread(str(tmp_path / "user.jpg")) is not None and not is_litepose_overlay(tmp_path / "user.jpg")
    with pytest.raises(ValueError):
        tag_overlay(b"GIF89a")


@pytest.mark.needs_shared
def test_predict_checkpoint_in_fast_mode_needs_no_no_flip(shared_dir, tmp_path):
    """Flip is on by default for --checkpoint only with the official decoder: --mode fast alone just works."""
    image = _image(tmp_path / "a.png")
    r = invoke(["predict", "--checkpoint", shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth", image,
                "--mode", "fast", "--json", tmp_path / "p.json"])
    assert r.exit_code == 0, r.output
    assert "fast decoder, flip off" in r.output and len(json.loads((tmp_path / "p.json").read_text())) > 0


def test_validate_thresholds_must_be_possible(tmp_path):
    """An impossible threshold is a usage error (exit 2) before any work, not a run that must fail or pass."""
    for option, value in (("--min-oks-ap", "1.5"), ("--min-oks-ap", "-1"), ("--min-sqnr", "nan"),
                          ("--min-sqnr", "-inf"), ("--max-ap-drop", "nan"), ("--max-ap-drop", "inf")):
        r = invoke(["validate", tmp_path / "m.tflite", "--reference", tmp_path / "r.tflite", "--images", tmp_path,
                    "--report", tmp_path / "rep", option, value])
        assert r.exit_code == 2 and option in r.output, (option, value, r.output)
    r = invoke(["validate", tmp_path / "m.tflite", "--reference", tmp_path / "r.tflite", "--images", tmp_path,
                "--report", tmp_path / "rep", "--min-sqnr", "inf"])   # a real limit: outputs must be identical
    assert r.exit_code == 1 and "Invalid value" not in _error_line(r)   # accepted; fails later on the empty folder
    r = invoke(["predict", "--model", tmp_path / "m.tflite", tmp_path, "--json", "-", "--min-joint-score", "nan"])
    assert r.exit_code == 2 and "finite" in r.output


@pytest.mark.needs_shared
def test_predict_failure_leaves_no_overlays_and_skip_unreadable_goes_on(xs_tflite, tmp_path):
    good = _image(tmp_path / "good.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    draw = tmp_path / "draw"
    r = invoke(["predict", "--model", xs_tflite, good, bad, "--json", tmp_path / "p.json", "--draw", draw])
    assert r.exit_code == 1 and "bad.jpg" in _error_line(r)
    assert not (tmp_path / "p.json").exists() and not draw.exists()     # not even the empty --draw folder
    r = invoke(["predict", "--model", xs_tflite, good, bad, "--json", tmp_path / "p.json", "--draw", draw,
                "--skip-unreadable"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "bad.jpg" in r.output
    assert {e["image"] for e in json.loads((tmp_path / "p.json").read_text())} <= {str(good)}
    assert [p.name for p in draw.iterdir()] == ["good_pose.jpg"]

    nested = tmp_path / "new" / "deeper" / "draw"        # three folders made for this run: all go again
    r = invoke(["predict", "--model", xs_tflite, good, bad, "--json", tmp_path / "q.json", "--draw", nested])
    assert r.exit_code == 1 and not (tmp_path / "new").exists()

    other = _image(tmp_path / "other.png")
    r = invoke(["predict", "--model", xs_tflite, good, other, "--json", tmp_path / "p.json", "--draw", draw])
    assert r.exit_code == 0 and sorted(p.name for p in draw.iterdir()) == ["good_pose.jpg", "other_pose.jpg"]

    # a failure while writing (the JSON goes to a full disk) leaves neither the overlays nor the folders
    if not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)):
        pytest.skip("no /dev/full character device here")
    r = invoke(["predict", "--model", xs_tflite, good, other, "--json", "/dev/full", "--draw", nested])
    assert r.exit_code == 1 and _error_line(r) == "Error: /dev/full: cannot write (No space left on device)"
    assert not (tmp_path / "new").exists()


@pytest.mark.needs_shared
def test_predict_refuses_to_overwrite_the_model_card_or_an_image(xs_tflite, tmp_path):
    good = _image(tmp_path / "good.png")
    card = xs_tflite.with_suffix(".json")
    before = card.read_bytes()
    r = invoke(["predict", "--model", xs_tflite, good, "--json", card])
    assert r.exit_code == 1 and "would overwrite the model card" in _error_line(r)
    assert card.read_bytes() == before
    r = invoke(["predict", "--model", xs_tflite, good, "--json", good])
    assert r.exit_code == 1 and "would overwrite the input image" in _error_line(r)


def test_official_mode_refuses_an_input_beyond_the_size_limit():
    from python_ref.preprocess import MAX_INPUT_SIDE, InputTooLarge, official_input_size

    (w_in, h_in), _, _ = official_input_size((4, 40), 256)  # 10:1 fits
    assert (h_in, w_in) == (256, 2560)
    with pytest.raises(InputTooLarge, match=r"4x3000 \(HxW\) image needs a 256x192000"):
        official_input_size((4, 3000), 256)
    assert MAX_INPUT_SIDE >= 2560


@pytest.mark.needs_shared
def test_skip_unreadable_also_skips_an_image_too_large_for_the_official_mode(shared_dir, tmp_path):
    good = _image(tmp_path / "good.png")
    long = tmp_path / "long.png"
    cv2.imwrite(str(long), np.full((4, 3000, 3), 128, np.uint8))     # needs a 256x192000 official input
    args = ["predict", "--checkpoint", shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth", good, long,
            "--json", tmp_path / "p.json", "--no-flip"]
    r = invoke(args)
    assert r.exit_code == 1 and "long.png" in _error_line(r) and not (tmp_path / "p.json").exists()
    r = invoke(args + ["--skip-unreadable"])
    assert r.exit_code == 0, r.output
    assert "skipped: " in r.output and "network input" in r.output and "1 unreadable or unusable" in r.output
    assert {e["image"] for e in json.loads((tmp_path / "p.json").read_text())} <= {str(good)}


# ---- export-golden -----------------------------------------------------------------------------------

@pytest.mark.needs_shared
def test_export_golden_is_all_or_nothing_and_names_cases_uniquely(xs_tflite, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = _image(tmp_path / "a" / "same.png", 1), _image(tmp_path / "b" / "same.png", 2)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    out = tmp_path / "golden"
    r = invoke(["export-golden", "--model", xs_tflite, "--out", out, one, bad])
    assert r.exit_code == 1 and "bad.png" in _error_line(r)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    r = invoke(["export-golden", "--model", xs_tflite, "--out", out, "--prefix", "my model/v1", one])
    assert r.exit_code == 1 and "--prefix" in _error_line(r) and not out.exists()
    r = invoke(["export-golden", "--model", xs_tflite, "--out", out, "--prefix", "xs", one, two])
    assert r.exit_code == 0, r.output
    cases = sorted(p.name for p in out.glob("*.json"))
    assert cases == ["xs__same-2.json", "xs__same.json"]
    sources = {json.loads((out / c).read_text())["source"]["image"] for c in cases}
    assert sources == {"same.png"}
    a, b = (np.fromfile(out / f"{c[:-5]}.heatmaps_s4.bin", "<f4") for c in cases)
    assert not np.array_equal(a, b)  # two cases from two different images, neither overwritten


# ---- evaluate -------------------------------------------------------------------------------------

def _annotations(tmp_path):
    kp = [10.0, 10.0, 2] * 14
    gt = {"images": [{"id": 1, "file_name": "one.jpg", "width": 100, "height": 100},
                     {"id": 2, "file_name": "two.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": kp, "num_keypoints": 14,
                           "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "person", "keypoints": list(CROWDPOSE_JOINTS), "skeleton": []}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path


def test_evaluate_skips_unknown_images_on_request_and_warns_about_unpredicted_ones(tmp_path):
    gt = _annotations(tmp_path)
    perfect = {"image": "x/one.jpg", "keypoints": [10.0, 10.0, 1.0] * 14, "score": 0.9}
    stranger = {"image": "x/astronaut.png", "keypoints": [1.0, 1.0, 1.0] * 14, "score": 0.9}
    results = tmp_path / "r.json"
    results.write_text(json.dumps([perfect, stranger]))
    r = invoke(["evaluate", "--annotations", gt, "--results", results])
    assert r.exit_code == 1 and "astronaut.png" in _error_line(r) and "--skip-unknown-images" in r.output
    r = invoke(["evaluate", "--annotations", gt, "--results", results, "--skip-unknown-images",
                "--json", tmp_path / "m.json"])
    assert r.exit_code == 0, r.output
    assert "1 image(s) not in" in r.output and "1 of 2 annotated images have no predictions" in r.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["AP"] == pytest.approx(1.0)  # the one person found exactly; two.jpg has nobody to miss


def test_evaluate_reads_results_from_stdin_and_writes_metrics_to_stdout(tmp_path):
    gt = _annotations(tmp_path)
    predictions = [{"image": "x/one.jpg", "keypoints": [10.0, 10.0, 1.0] * 14, "score": 0.9}]
    r = CliRunner().invoke(main, ["evaluate", "--annotations", str(gt), "--results", "-", "--json", "-"],
                           input=json.dumps(predictions))
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)                          # standard output holds the JSON alone
    assert metrics["AP"] == pytest.approx(1.0) and "metric" in r.stderr and "AP " in r.stderr
    r = CliRunner().invoke(main, ["evaluate", "--annotations", str(gt), "--results", "-"], input="[{]")
    assert r.exit_code == 1 and _error_line(r).startswith("Error: <stdin>: not a JSON results file")
    r = CliRunner().invoke(main, ["evaluate", "--annotations", str(gt), "--results", "-"], input="")   # predict failed
    assert r.exit_code == 1 and _error_line(r) == ("Error: <stdin>: empty, no results (did the command before the "
                                                   "pipe fail?)")
    import python_ref.evaluate as ev

    for stdin, says in ((None, "standard input is closed"), (_Terminal(), "standard input is a terminal")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ev.sys, "stdin", stdin)
            with pytest.raises(LitePoseError, match=says):
                ev.run_evaluate(gt, "-")


class _Terminal:
    """An interactive standard input: nothing is piped in."""
    buffer = object()
    closed = False

    def isatty(self):
        return True


def test_evaluate_output_checks(tmp_path):
    gt = _annotations(tmp_path)
    results = tmp_path / "r.json"
    results.write_text(json.dumps([{"image": "one.jpg", "keypoints": [10.0, 10.0, 1.0] * 14, "score": 0.9},
                                   {"image": "one.jpg", "keypoints": [10.0, 10.0, 1.0] * 13, "score": 0.5}]))
    r = invoke(["evaluate", "--annotations", gt, "--results", results])
    assert "entry 1: 'keypoints' has 39 values but entry 0 has 42" in _error_line(r)
    assert "14 joints = 42 values" in r.output
    results.write_text(json.dumps([{"image": "one.jpg", "keypoints": [10.0, 10.0, 1.0] * 14}]))
    assert "entry 0 has no 'score'" in _error_line(invoke(["evaluate", "--annotations", gt, "--results", results]))
    results.write_text(json.dumps([]))
    r = invoke(["evaluate", "--annotations", gt, "--results", results, "--json", results])
    assert "would overwrite the results file" in _error_line(r) and results.read_text() == "[]"
    (tmp_path / "folder").mkdir()
    r = invoke(["evaluate", "--annotations", gt, "--results", results, "--json", tmp_path / "folder"])
    assert "this is a folder" in _error_line(r)


def test_click_exceptions_inside_commands_still_exit_with_their_code():
    group = _Group(name="litepose")

    @group.command("fails")
    def fails():
        raise click.ClickException("nope")

    r = CliRunner().invoke(group, ["fails"])
    assert r.exit_code == 1 and r.output.strip() == "Error: nope"


@pytest.mark.needs_shared
def test_predict_warns_when_the_model_differs_from_its_card(xs_tflite, tmp_path):
    good = _image(tmp_path / "good.png")
    model = tmp_path / "m.tflite"
    model.write_bytes(xs_tflite.read_bytes())
    card = json.loads(xs_tflite.with_suffix(".json").read_text())
    (tmp_path / "m.json").write_text(json.dumps(card))
    r = invoke(["predict", "--model", model, good, "--json", tmp_path / "a.json"])
    assert r.exit_code == 0 and "differs from its model card" not in r.output, r.output
    (tmp_path / "m.json").write_text(json.dumps({**card, "sha256": "0" * 64}))
    r = invoke(["predict", "--model", model, good, "--json", tmp_path / "b.json"])
    assert r.exit_code == 0 and "warning:" in r.output and "differs from its model card m.json" in r.output


def test_python_ref_exports_the_common_names_lazily():
    import subprocess
    import sys

    code = ("import sys, python_ref; assert 'cv2' not in sys.modules; "
            "from python_ref import DeployedModel, predict_image, draw_poses, letterbox, decode_fast; "
            "from python_ref.predict import predict_image as p; assert p is predict_image; "
            "assert 'tensorflow' not in sys.modules; print(sorted(python_ref.__all__)[:2])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "DeployedModel" in out.stdout
    import python_ref
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        python_ref.nope  # noqa: B018


def test_reconverting_the_same_build_keeps_its_recorded_accuracy(tmp_path):
    from converter.convert import update_manifest

    card = {"sha256": "a" * 64, "size_bytes": 1, "variant": "XS", "precision": "fp32", "input_size": "128x128",
            "joints": 14, "inputs": {"image": {"dtype": "float32"}}, "graph": "deploy"}
    model = tmp_path / "x.tflite"
    manifest = update_manifest(model, card)
    data = json.loads(manifest.read_text())
    data["models"][0].update(accuracy={"oks_ap_vs_reference": 0.9}, latency={"median_ms_by_threads": {"1": 5.0}})
    manifest.write_text(json.dumps(data))
    entry = json.loads(update_manifest(model, card).read_text())["models"][0]  # the same bytes again
    assert entry["accuracy"] == {"oks_ap_vs_reference": 0.9} and entry["graph"] == "deploy"
    entry = json.loads(update_manifest(model, {**card, "sha256": "b" * 64}).read_text())["models"][0]
    assert entry["accuracy"] is None and entry["latency"] is None  # another build: old numbers do not apply
    assert "depthwise_form" not in entry                                # not an int8 deploy build
    assert entry["output_dtype"] is None                                # a card without outputs (made up here)
    blocked = {**card, "precision": "int8", "rewrites": {"depthwise_form": {"form": "blocked", "chosen_by": "auto"}}}
    entry = json.loads(update_manifest(model, blocked).read_text())["models"][0]
    assert entry["depthwise_form"] == "blocked"    # the Android build leaves such files (x86 hosts only) out


def test_write_errors_are_one_line_and_leave_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(LitePoseError, match=r"out.json: cannot write \(No space left on device\)"):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.needs_shared
def test_the_same_image_twice_is_used_once_and_empty_paths_are_refused(xs_tflite, tmp_path):
    (tmp_path / "d").mkdir()
    img = _image(tmp_path / "d" / "x.png")
    (tmp_path / "d" / "._x.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    r = invoke(["predict", "--model", xs_tflite, img, tmp_path / "d", f"{tmp_path}/d/../d/x.png",
                "--json", tmp_path / "p.json"])
    assert r.exit_code == 0, r.output
    assert "2 image path(s) given twice" in r.output
    assert {e["image"] for e in json.loads((tmp_path / "p.json").read_text())} <= {str(img)}
    r = invoke(["predict", "--model", xs_tflite, "", "--json", tmp_path / "q.json"])
    assert "empty image path" in _error_line(r)


def test_evaluate_warns_when_different_files_share_an_annotated_name(tmp_path):
    gt = _annotations(tmp_path)
    entry = {"keypoints": [10.0, 10.0, 1.0] * 14, "score": 0.9}
    results = tmp_path / "r.json"
    results.write_text(json.dumps([{**entry, "image": "a/one.jpg"}, {**entry, "image": "b/one.jpg"}]))
    r = invoke(["evaluate", "--annotations", gt, "--results", results])
    assert r.exit_code == 0 and "2 different files are matched by file name" in r.output, r.output


@pytest.mark.needs_shared
def test_predict_warns_about_exif_rotation_and_turns_photos_upright_on_request(xs_tflite, exif_jpeg, tmp_path):
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(3).integers(0, 256, (120, 80, 3), dtype=np.uint8))
    photo = tmp_path / "portrait.jpg"                      # stored 80 wide x 120 high, shown turned 90 degrees
    photo.write_bytes(exif_jpeg(jpeg.tobytes(), 6, "big"))
    r = invoke(["predict", "--model", xs_tflite, photo, "--json", tmp_path / "stored.json"])
    assert r.exit_code == 0, r.output
    assert "EXIF orientation 6" in r.output and "--exif-rotate" in r.output
    r = invoke(["predict", "--model", xs_tflite, photo, "--json", tmp_path / "upright.json", "--exif-rotate",
                "--draw", tmp_path / "d"])
    assert r.exit_code == 0 and "EXIF orientation" not in r.output, r.output
    assert cv2.imread(str(tmp_path / "d" / "portrait_pose.jpg")).shape[:2] == (80, 120)   # the upright picture
    stored = json.loads((tmp_path / "stored.json").read_text())
    upright = json.loads((tmp_path / "upright.json").read_text())
    assert stored and upright and stored != upright


@pytest.mark.needs_shared
def test_predict_notes_when_the_letterbox_shrinks_people_and_names_the_input_size(xs_tflite, tmp_path):
    wide = _image(tmp_path / "wide.png", 4, hw=(96, 128))  # official: short side 128 -> 128x192 input, 1.33x bigger
    square = _image(tmp_path / "square.png", 5, hw=(100, 100))
    r = invoke(["predict", "--model", xs_tflite, square, "--json", tmp_path / "a.json"])
    assert r.exit_code == 0 and "note:" not in r.output, r.output
    r = invoke(["predict", "--model", xs_tflite, square, wide, "--json", tmp_path / "b.json"])
    note = [line for line in r.output.splitlines() if line.startswith("note:")]
    assert r.exit_code == 0 and len(note) == 1, r.output
    assert "1 image(s)" in note[0] and "1.3x smaller" in note[0] and "--input-size 128x192" in note[0]
    assert str(wide) in note[0]



def test_a_fifo_output_says_when_it_waits_for_a_reader_and_never_drops_bytes(tmp_path, capsys):
    """No reader yet: one line says so (not a silent hang), then the bytes go out when one comes. A reader
    already there: more than a pipe's buffer goes through (the descriptor must be back in blocking mode)."""
    import threading
    import time

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    payload = "p" * 300_000            # several times the 64 KiB pipe buffer
    errors = []

    def write():
        try:
            write_text_atomic(fifo, payload)
        except BaseException as exc:   # reported by the assertion below
            errors.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    said, deadline = "", time.monotonic() + 20
    try:
        while "waiting for a reader" not in said and time.monotonic() < deadline:
            time.sleep(0.05)
            said += capsys.readouterr().err
        assert said.strip() == f"[litepose] {fifo}: waiting for a reader of this FIFO (Ctrl-C to stop)"
        assert fifo.read_bytes() == payload.encode()
    finally:
        if writer.is_alive():   # never leave the writer blocked in open(): a reader releases it
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    writer.join(20)
    assert not writer.is_alive() and not errors

    reader_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # a reader is there before the writer
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    got, deadline = bytearray(), time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            chunk = os.read(reader_fd, 1 << 16)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not chunk:              # no writer (yet, or any more)
            if not writer.is_alive():
                break
            time.sleep(0.01)
        got += chunk
    os.close(reader_fd)
    writer.join(20)
    assert bytes(got) == payload.encode() and not errors
    assert "waiting" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]   # no staging file left

    import socket                    # ENXIO from a socket is not a FIFO without a reader: one error, no waiting
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(LitePoseError, match=r"sock: cannot write \(No such device or address\)"):
            write_text_atomic(tmp_path / "sock", "x")
    assert "waiting" not in capsys.readouterr().err


def test_long_file_names_fail_early_or_work(tmp_path):
    """The longest legal name works (its hidden staging name is shortened), a longer one fails in one line
    before any work, for the convert output (and its card) and for other outputs alike."""
    import os

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    longest = tmp_path / ("m" * (limit - 5) + ".json")
    write_text_atomic(longest, "{}")
    with staged_outputs() as stage:
        stage(tmp_path / ("o" * (limit - 4) + ".jpg"), b"jpeg")
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [limit, limit]
    too_long = tmp_path / ("m" * (limit - 4) + ".json")
    with pytest.raises(LitePoseError, match=rf"the file name is {limit + 1} bytes long, the file system allows {limit}"):
        check_output_location(too_long, "--json output")
    r = invoke(["convert", "--checkpoint", tmp_path / "x.pth", "--output", tmp_path / ("m" * (limit - 6) + ".tflite")])
    assert r.exit_code == 1 and f"allows {limit}" in _error_line(r) and "x.pth" not in _error_line(r)  # first


def test_staged_outputs_put_devices_first_and_the_main_file_last(tmp_path):
    """Nothing appears in its place while the block runs; a file that cannot be put in place stops the ones staged
    after it (the main output, staged last, never appears without the others); a device that fails is tried
    first, so nothing else appears; no staging file is left in any case."""
    with pytest.raises(RuntimeError):
        with staged_outputs() as stage:
            stage(tmp_path / "a.jpg", b"a")
            # on disk at once, hidden, so that thousands of overlays do not pile up in memory
            (hidden,) = tmp_path.iterdir()
            assert hidden.name.startswith(".a.jpg.") and hidden.read_bytes() == b"a"
            raise RuntimeError("the work failed")
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "b.jpg").mkdir()     # in the way of the second file
    with pytest.raises(LitePoseError, match=r"b\.jpg: cannot write"):
        with staged_outputs() as stage:
            for name in ("a.jpg", "b.jpg", "main.json"):
                stage(tmp_path / name, name.encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg"]      # main.json not there
    (tmp_path / "a.jpg").unlink()

    if os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode):
        with pytest.raises(LitePoseError, match="^/dev/full: cannot write"):
            with staged_outputs() as stage:
                stage(tmp_path / "a.jpg", b"a")
                stage("/dev/full", b"x" * 10)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jpg"]
    with staged_outputs() as stage:
        stage(tmp_path / "a.jpg", b"1")
        stage(tmp_path / "main.json", b"2")
    assert (tmp_path / "a.jpg").read_bytes() == b"1" and (tmp_path / "main.json").read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg", "main.json"]


def test_outputs_follow_symlinks_and_write_into_pipes_and_devices(tmp_path):
    """A rename would replace the link, the FIFO or the device node itself (as root, /dev/null became a
    regular file): the link's target is replaced instead, a pipe or device receives the finished bytes."""
    import threading

    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_text_atomic(fifo, '{"people": 3}')
    reader.join(10)
    assert received == [b'{"people": 3}'] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe", "real.json"]   # no temp left

    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(LitePoseError, match="loop.json: a loop of symbolic links"):
        write_text_atomic(loop, "x")
    assert loop.is_symlink()

    # /dev/stdout redirected to a file (`>> log`): written where the descriptor stands, the file not replaced
    log = tmp_path / "log.txt"
    log.write_text("PRE\n")
    code = ("import sys; from python_ref.io_utils import write_text_atomic; print('before', flush=True); "
            "write_text_atomic('/dev/stdout', '{}\\n'); print('after')")
    with open(log, "a") as out:
        done = subprocess.run([sys.executable, "-c", code], stdout=out, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0 and log.read_text() == "PRE\nbefore\n{}\nafter\n"
    from converter.convert import check_output_path

    with pytest.raises(LitePoseError, match="the output must be a file"):
        check_output_path(fifo.rename(tmp_path / "model.tflite"), ".tflite")

    if not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)):
        pytest.skip("no /dev/full character device here")
    with pytest.raises(LitePoseError, match=r"^/dev/full: cannot write \(No space left on device\)"):
        write_text_atomic("/dev/full", "x" * 10)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    write_text_atomic("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_bench_decoder_writes_to_stdout_and_refuses_data_dir_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["bench-decoder", "--json", "-", "--repeat", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report and not (tmp_path / "-").exists()        # not a file named '-'
    r = invoke(["bench-decoder", "--json", tmp_path / "b.json", "--data-dir", tmp_path])
    assert r.exit_code == 2 and "--data-dir applies with --accuracy-dir only" in r.output
    # inputs that are not decode fixtures fail in one line before the timings (--repeat 10000 would take minutes)
    (tmp_path / "f.json").write_text("{}")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "empty").mkdir()
    (tmp_path / "outputs_only").mkdir()
    np.savez(tmp_path / "outputs_only" / "a.npz", **{k: np.zeros(3) for k in ("out0", "out1", "out0_flip", "out1_flip")})
    for args, says in ((["--fixture", tmp_path / "f.json"], "f.json: not a decode fixture (.npz archive"),
                       (["--fixture", tmp_path / "single.npy"], "single.npy: not a decode fixture (.npz archive"),
                       (["--fixture", tmp_path / "other.npz"], "other.npz: not a decode fixture (no out0, out1"),
                       (["--accuracy-dir", tmp_path / "empty"], "empty: no real-weight decode fixtures"),
                       (["--accuracy-dir", tmp_path / "outputs_only"], "a.npz: not a decode fixture (no noflip_final")):
        r = invoke(["bench-decoder", "--json", tmp_path / "b.json", "--repeat", 10000] + args)
        assert r.exit_code == 1 and says in _error_line(r), r.output
    assert not (tmp_path / "b.json").exists()
    # an output that is an input, and a data folder without annotations, fail before the timings too
    before = (tmp_path / "other.npz").read_bytes()
    for args, says in ((["--fixture", tmp_path / "other.npz", "--json", tmp_path / "other.npz"],
                        "would overwrite the --fixture"),
                       (["--accuracy-dir", tmp_path / "outputs_only", "--json", tmp_path / "outputs_only" / "a.npz"],
                        "would overwrite the fixture a.npz"),
                       (["--accuracy-dir", tmp_path / "outputs_only", "--data-dir", tmp_path / "empty", "--json",
                         tmp_path / "b.json"], "no <set>/annotations.json")):
        r = invoke(["bench-decoder", "--repeat", 10000] + args)
        assert r.exit_code == 1 and says in _error_line(r), r.output
    assert (tmp_path / "other.npz").read_bytes() == before and not (tmp_path / "b.json").exists()


def test_validate_names_a_file_given_as_the_image_folder(tmp_path):
    image = tmp_path / "one.jpg"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    r = invoke(["validate", tmp_path / "m.tflite", "--reference", tmp_path / "r.tflite", "--images", image,
                "--report", tmp_path / "rep"])
    assert r.exit_code == 1 and "--images takes a folder" in _error_line(r)


@pytest.mark.needs_shared
def test_predict_drawing_into_its_input_folder_can_run_again(xs_tflite, tmp_path):
    """The overlays a first run drew into its input folder (tagged with a JPEG comment) are not inputs of
    the second run, nested inputs' overlays included, nor of a run drawing somewhere else; a photo of the
    user's named like an overlay is an input, and an overlay that would overwrite it is refused as before."""
    from python_ref.draw import OVERLAY_TAG, is_litepose_overlay

    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    _image(folder / "a.png")
    _image(folder / "sub" / "c.png")
    _image(folder / "solo_pose.jpg")
    for run in range(2):
        r = invoke(["predict", "--model", xs_tflite, folder, "--json", tmp_path / f"p{run}.json", "--draw", folder])
        assert r.exit_code == 0, r.output
        images = {os.path.basename(e["image"]) for e in json.loads((tmp_path / f"p{run}.json").read_text())}
        assert images <= {"a.png", "c.png", "solo_pose.jpg"}
    assert "3 overlay(s) that litepose drew in" in r.output      # a_pose, c_pose, solo_pose_pose
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_pose.jpg", "c_pose.jpg", "solo_pose.jpg",
                                                        "solo_pose_pose.jpg", "sub"]
    # drawing into another folder inside it: the overlays of the runs above are still no inputs
    r = invoke(["predict", "--model", xs_tflite, folder, "--json", tmp_path / "p3.json", "--draw", folder / "out"])
    assert r.exit_code == 0, r.output
    images = sorted(os.path.basename(e["image"]) for e in json.loads((tmp_path / "p3.json").read_text()))
    assert set(images) == {"a.png", "c.png", "solo_pose.jpg"}
    assert is_litepose_overlay(folder / "a_pose.jpg") and not is_litepose_overlay(folder / "solo_pose.jpg")
    assert OVERLAY_TAG in (folder / "a_pose.jpg").read_bytes()[:64]
    assert cv2.imread(str(folder / "a_pose.jpg")).shape[:2] == (96, 128)     # still a valid JPEG
    # the user's own b_pose.jpg (no tag) next to b.png: an input, and not overwritten
    _image(folder / "b.png")
    _image(folder / "b_pose.jpg", seed=5)
    before = (folder / "b_pose.jpg").read_bytes()
    r = invoke(["predict", "--model", xs_tflite, folder, "--json", tmp_path / "p2.json", "--draw", folder])
    assert r.exit_code == 1 and "b_pose.jpg" in _error_line(r)
    assert (folder / "b_pose.jpg").read_bytes() == before


def test_predict_checkpoint_without_tensorflow_says_so_first(monkeypatch, tmp_path):
    """On a device without TensorFlow: one line naming what to install, before any progress line."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    image = _image(tmp_path / "a.png")
    r = invoke(["predict", "--checkpoint", tmp_path / "x.pth", image, "--json", tmp_path / "p.json"])
    assert r.exit_code == 1 and r.output.strip().splitlines() == [_error_line(r)]
    assert "needs TensorFlow" in _error_line(r) and "pip install '.[convert]'" in _error_line(r)
    assert not (tmp_path / "p.json").exists()


def test_a_shell_glob_after_a_one_value_option_says_to_repeat_the_option(tmp_path):
    """`--calib-images data/*/images` expands to several folders; click's own message does not say why."""
    r = invoke(["convert", "--checkpoint", tmp_path / "x.pth", "--precision", "int8", "--output", tmp_path / "o.tflite",
                "--calib-images", tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert r.exit_code == 2
    line = _error_line(r)
    assert "unexpected extra arguments" in line and "--calib-images A --calib-images B" in line
    assert not (tmp_path / "o.tflite").exists()
