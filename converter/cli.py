"""The `litepose` command line: thin click commands over converter/ and python_ref/.

TensorFlow is imported lazily inside the commands that need it, so `--help`, `predict --model` and
`evaluate` start fast and run without it. Status goes to stderr, data to files or stdout.
Exit codes: 0 ok, 1 error or below threshold, 2 usage.
"""
from __future__ import annotations

import contextlib
import os
import sys

import click

from python_ref import __version__
from python_ref.errors import LitePoseError, first_line


# Optional heavy packages -> what to install. The device install (requirements-ref.txt) has none of them.
_EXTRAS = {"tensorflow": "convert", "keras": "convert", "tf_keras": "convert", "onnx": "convert",
           "onnx2tf": "convert", "onnxruntime": "convert", "sng4onnx": "convert", "onnx_graphsurgeon": "convert",
           "psutil": "convert", "matplotlib": "convert"}


def _failing_extra(exc: ImportError) -> str | None:
    """The optional package (a key of _EXTRAS) in whose own code `exc` was raised, if any: the last frame
    outside the import machinery, below the site-packages folder when there is one."""
    import traceback

    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    if not frames:
        return None
    parts = frames[-1].replace("\\", "/").split("/")
    for site in ("site-packages", "dist-packages"):
        if site in parts:
            parts = parts[len(parts) - parts[::-1].index(site):]
    return next((top for top in _EXTRAS if top in parts[:-1] or parts[-1] == f"{top}.py"), None)


class _Group(click.Group):
    """One-line `Error: ...` for user errors (LitePoseError, usage errors, a missing optional package)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LitePoseError as exc:
            raise click.ClickException(str(exc)) from None
        except ImportError as exc:
            command = ctx.invoked_subcommand or "this command"
            top = (exc.name or "").split(".")[0]
            if isinstance(exc, ModuleNotFoundError) and top in _EXTRAS:
                needs = "TensorFlow" if top in ("tensorflow", "keras", "tf_keras") else top
                raise click.ClickException(
                    f"`litepose {command}` needs {needs}, which is not installed here; install it from the "
                    f"litepose-edge checkout with pip install '.[{_EXTRAS[top]}]' "
                    "(or pip install -r requirements.txt)") from None
            top = _failing_extra(exc)     # installed but broken (built against another numpy, a missing dependency)
            if top is None:
                raise
            raise click.ClickException(
                f"`litepose {command}` needs {top}, which is installed but fails to import ({first_line(exc)}); "
                "reinstall it with pip install --force-reinstall -r requirements.txt, or in a fresh virtual "
                "environment") from None
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            sys.exit(130)

    def main(self, *args, **kwargs):
        """Usage errors as one line too (click's default is a usage block plus the error)."""
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # bare `litepose`: the help
                click.echo(exc.ctx.get_help())
                sys.exit(0)
            where = exc.ctx.command_path if exc.ctx else "litepose"
            hint = ""
            if exc.format_message().startswith("Got unexpected extra argument"):   # `--calib-images data/*/images`
                hint = ("; each option takes one value (a shell glob such as data/*/images gives several: "
                        "repeat an option that takes more, e.g. --calib-images A --calib-images B)")
            click.echo(f"Error: {exc.format_message()}{hint} (see {where} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="litepose")
def main():
    """LitePose Edge: convert LitePose checkpoints to LiteRT, check them, benchmark them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines once absl is set up


# Commands are registered below, one import per command module.


@main.command()
@click.option("--checkpoint", required=True, help="Official LitePose checkpoint (.pth / .pth.tar).")
@click.option("--arch", default=None, help="XS|S|M|L|prune-S|prune-M|prune-L or an arch JSON file "
              "(default: detected from the checkpoint).")
@click.option("--joints", type=click.Choice(["14", "17"]), default=None, help="14 CrowdPose, 17 COCO (default: detected).")
@click.option("--input-size", default=None, help="HxW, multiples of 16, e.g. 480x640 (default: the variant's size, square).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "dynamic", "int8"]), default="fp32", show_default=True)
@click.option("--output", required=True, help="Output .tflite file (a model card .json is written next to it).")
@click.option("--keras", "keras_path", default=None, help="Also save the float Keras model (.keras).")
@click.option("--calib-images", multiple=True, help="Folder of representative images (int8 only; searched "
              "with its sub-folders; give the option again for more folders).")
@click.option("--calib-annotations", default=None, help="CrowdPose/COCO annotation JSON for the calibration images.")
@click.option("--calib-count", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--calib-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--input-dtype", type=click.Choice(["uint8", "int8"]), default="uint8", show_default=True)
@click.option("--output-dtype", type=click.Choice(["float32", "int8"]), default="float32", show_default=True)
@click.option("--graph", type=click.Choice(["deploy", "plain"]), default="deploy", show_default=True,
              help="deploy: the exact rewrites of converter/rewrites.py (fast kernels, int8-friendly); plain: as built.")
@click.option("--activation-ranges", type=click.Choice(["minmax", "mse-backbone", "mse-heads", "mse"]),
              default=None, help="int8: MSE-optimal clipping of the backbone's activations and min/max for the "
              "heads (mse-backbone, the default), min/max everywhere, or MSE clipping for the heads / all tensors "
              "(docs/int8.md section 3).")
@click.option("--weight-rounding", type=click.Choice(["gptq", "nearest"]), default=None,
              help="int8: round each conv's weights to the int8 grid point set with the least output error on the "
              "calibration images (gptq, the default) or to the nearest grid point (docs/int8.md section 3).")
@click.option("--split-head-ranges", is_flag=True,
              help="int8: each 1/4-scale heatmap head's depthwise output as two half-range channels (exact): "
              "heatmaps_s4 +0.4 to +0.8 dB SQNR over held-out views on top of the default output bias "
              "correction (+1.2 dB without it) for about 1 ms (2 %) more on LitePose-M (docs/int8.md).")
@click.option("--output-bias-correction/--no-output-bias-correction", default=True, show_default=True,
              help="int8: fold each output channel's mean int8 error on the calibration images into the bias of "
              "the conv that makes the output (same graph; heatmaps_s4 +0.4 to +0.8 dB on LitePose-M, "
              "docs/int8.md).")
@click.option("--depthwise-form", type=click.Choice(["split", "blocked", "auto"]), default="split", show_default=True,
              help="int8, deploy graph: how depthwise convs of 25 taps or more (LitePose's 7x7 and 5x5) run. "
              "split: three depthwise pieces summed, on XNNPACK's depthwise kernels (small file; for phones). "
              "blocked: one grouped conv on pixel blocks, on its int8 GEMM kernels: 3x faster per layer on x86 CPUs "
              "whose GEMMs are much faster than their depthwise kernels (Intel AMX), but a ~20x larger file. "
              "auto: whichever runs faster on this computer, timed on one layer. See docs/int8.md, sessions 12-13.")
def convert(checkpoint, arch, joints, input_size, precision, output, keras_path, calib_images, calib_annotations,
            calib_count, calib_seed, input_dtype, output_dtype, graph, activation_ranges, weight_rounding,
            split_head_ranges, output_bias_correction, depthwise_form):
    """Convert an official LitePose checkpoint to a validated TFLite model (+ model card, manifest entry)."""
    from .convert import run_convert

    if precision != "int8":  # options that only int8 reads, given on the command line, even at their default
        ctx = click.get_current_context()
        for name in ("calib_count", "calib_seed", "input_dtype", "output_dtype", "output_bias_correction",
                     "depthwise_form"):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                flag = ("--" if ctx.params.get(name) is not False else "--no-") + name.replace("_", "-")
                raise LitePoseError(f"{flag} applies to --precision int8 only (the {precision} model has float "
                                    "inputs and outputs and needs no calibration)")

    run_convert(checkpoint=checkpoint, arch=arch, joints=int(joints) if joints else None, input_size=input_size,
                precision=precision, output=output, keras_path=keras_path, calib_images=calib_images,
                calib_annotations=calib_annotations, calib_count=calib_count, input_dtype=input_dtype,
                output_dtype=output_dtype, calib_seed=calib_seed, graph=graph, activation_ranges=activation_ranges,
                weight_rounding=weight_rounding, split_head_ranges=split_head_ranges,
                output_bias_correction=output_bias_correction, depthwise_form=depthwise_form)


from python_ref.evaluate import evaluate_command  # noqa: E402  (numpy-only; no TensorFlow)

main.add_command(evaluate_command)

import python_ref.predict  # noqa: E402  (TensorFlow only inside --checkpoint)


def _checkpoint_model(path, **options):
    from .float_model import CheckpointModel   # TensorFlow: only when a checkpoint is predicted on

    return CheckpointModel(path, **options)


python_ref.predict.checkpoint_model_factory = _checkpoint_model
main.add_command(python_ref.predict.predict_command)

from .bench import bench_command  # noqa: E402  (TensorFlow only inside the command)

main.add_command(bench_command)

from python_ref.bench_decoder import bench_decoder_command  # noqa: E402  (numpy/SciPy/OpenCV only)

main.add_command(bench_decoder_command)

from .validate import validate_command  # noqa: E402  (TensorFlow only for a checkpoint reference)

main.add_command(validate_command)

from .op_profile import profile_command  # noqa: E402  (TensorFlow's FlatBuffer schema only inside the command)

main.add_command(profile_command)


@main.command("export-golden")
@click.option("--model", "model_path", required=True, help="A converted LitePose .tflite file.")
@click.option("--out", "out_dir", required=True, help="Folder for the cases (created if needed, in a folder that exists).")
@click.option("--prefix", default=None, help="Case name prefix (default: the model file's stem).")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_FOLDER...")
def export_golden_command(model_path, out_dir, prefix, images):
    """Golden vectors for the Kotlin pose core: raw outputs + the poses python_ref's fast decoder finds."""
    from python_ref.golden import export_golden_for_model
    from python_ref.predict import expand_images

    images = expand_images(images)
    written = export_golden_for_model(model_path, images, out_dir, prefix=prefix,
                                      log=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {len(written)} golden cases to {out_dir}", err=True)


def run() -> None:
    """The `litepose` console command: `main` with TensorFlow's and LiteRT's native start-up lines filtered
    off stderr (python_ref.io_utils.filter_native_stderr); `main` itself, as tests call it, filters nothing."""
    from python_ref.io_utils import filter_native_stderr

    _reopen_closed_standard_streams()
    _exit_cleanly_on_sigterm()
    # A file OpenCV cannot decode gets our one-line error; OpenCV's own warnings about it (a float TIFF's
    # samples, ...) would come on top (OPENCV_LOG_LEVEL still rules when set), libpng's go through the filter.
    if "OPENCV_LOG_LEVEL" not in os.environ:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    filter_native_stderr()
    main()


def _exit_cleanly_on_sigterm() -> None:
    """`kill`, `timeout` or a cancelled CI job send SIGTERM, whose default ends the process on the spot and
    leaves the scratch folders (converted models, saved models) behind; as an exception instead, every open
    `with` block cleans up, as after Ctrl-C. Exit status 143 (128 + 15), as the shell reports it."""
    import signal

    def terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # a second SIGTERM ends it at once
        print("Terminated", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError, OSError, AttributeError):   # not the main thread, or no SIGTERM
        signal.signal(signal.SIGTERM, terminated)


def _usable(fd: int, write: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: an open descriptor is taken as usable
        try:
            os.fstat(fd)
            return True
        except OSError:
            return False
    try:
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return False
    return access in ((os.O_WRONLY, os.O_RDWR) if write else (os.O_RDONLY, os.O_RDWR))


def _reopen_closed_standard_streams() -> None:
    """Started with stdin, stdout or stderr closed (`2>&-`, some daemons; a launcher script may even leave
    its own script file open there, read-only), writing a status line would fail the command, or the first
    output file would take that descriptor: give each such one /dev/null instead."""
    from python_ref.io_utils import CLOSED_AT_START

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if _usable(fd, write=mode == "w"):
            continue
        CLOSED_AT_START.add(fd)
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        os.set_inheritable(fd, True)  # os.open makes close-on-exec descriptors; child processes need this one
        if getattr(sys, name) is None:  # Python leaves the stream None when its descriptor was closed
            setattr(sys, name, open(fd, mode, buffering=1, closefd=False))
