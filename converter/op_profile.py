"""Where a .tflite model spends its time: every operator cut out into a one-op model and timed alone.

LiteRT's Python API has no op profiler, and its benchmark tool is not on PyPI. A one-op model holds the
op, its constant inputs (weights, shapes) and its own quantisation parameters, so it runs the kernel the
whole model runs (XNNPACK picks kernels by op, shape and type, not by neighbours). Timed alone, an op
finds its input and weights in cache run after run, while in the whole graph large tensors and weights
come from memory; and a RESHAPE alone is a copy that XNNPACK elides in a graph. A PAD whose only reader is
a convolution is folded into that convolution's padding by XNNPACK (a model of LitePose-M's stem takes 2.33 ms
with its PAD and 2.32 ms without; docs/int8.md, session 14), so such PADs are
reported as folded and left out of the sum. The sum of the op times is still not the model's time (usually
below it): the report gives both, and the ops rank the work.
"""
from __future__ import annotations

import collections
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import click
import numpy as np

from python_ref.errors import LitePoseError, first_line
from python_ref.io_utils import check_output_location, read_user_file, write_text_atomic



def log(msg: str) -> None:
    print(f"[litepose profile] {msg}", file=sys.stderr, flush=True)


def _schema():
    """The TFLite FlatBuffer object API: ai-edge-litert ships it, so profiling needs no TensorFlow (a device
    install has none); TensorFlow's copy where only tflite-runtime is installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _op_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def read_model(content: bytes, where: str = "model"):
    """The model as the FlatBuffer object API's ModelT (one subgraph)."""
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise LitePoseError(f"{where}: not a TFLite model (no TFL3 FlatBuffer identifier)")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    except Exception:   # struct / index errors of a truncated or corrupt FlatBuffer
        raise LitePoseError(f"{where}: not a readable TFLite model (truncated or corrupt)") from None
    if not model.subgraphs or not model.subgraphs[0].operators:
        raise LitePoseError(f"{where}: the model has no operators")
    return model


def _op_name(model, op, names) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"CUSTOM_{code.customCode}")


def _is_constant(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def weight_dequantizes(model) -> set[int]:
    """Indices of the DEQUANTIZE ops of constants (an fp16 file's weights): the runtime turns them into float
    weights once, when the model is loaded, so they take no time per run."""
    names = _op_names(_schema())
    graph = model.subgraphs[0]
    return {i for i, op in enumerate(graph.operators)
            if _op_name(model, op, names) == "DEQUANTIZE" and _is_constant(model, graph.tensors[op.inputs[0]])}


def one_op_models(model, weight_ops: set[int] | None = None):
    """(index, op name, one-op .tflite bytes) for each operator of the main subgraph, in order. The one-op
    model's inputs are the op's non-constant inputs, its outputs the op's outputs; constants are copied, and
    so are the DEQUANTIZE ops that make its weights from constants (fp16 files), so that the op keeps
    constant weights and runs the kernel it runs in the whole model (`weight_ops`: `weight_dequantizes(model)`,
    if the caller has it)."""
    import flatbuffers

    schema = _schema()
    names = _op_names(schema)
    graph = model.subgraphs[0]
    weight_ops = weight_dequantizes(model) if weight_ops is None else weight_ops
    made_by = {graph.operators[i].outputs[0]: i for i in weight_ops}
    for index, op in enumerate(graph.operators):
        ops = [graph.operators[made_by[t]] for t in dict.fromkeys(op.inputs) if t in made_by] + [op]
        used = list(dict.fromkeys(t for o in ops for t in [*o.inputs, *o.outputs] if t >= 0))
        new_index = {t: i for i, t in enumerate(used)}
        codes = list(dict.fromkeys(o.opcodeIndex for o in ops))
        one = schema.ModelT()
        one.version, one.operatorCodes, one.buffers = model.version, [model.operatorCodes[c] for c in codes], [
            schema.BufferT()]
        tensors = []
        for t in used:
            tensor = schema.TensorT()
            tensor.__dict__.update(graph.tensors[t].__dict__)
            if _is_constant(model, graph.tensors[t]):
                one.buffers.append(model.buffers[tensor.buffer])
                tensor.buffer = len(one.buffers) - 1
            else:
                tensor.buffer = 0
            tensors.append(tensor)
        sub = schema.SubGraphT()
        sub.tensors = tensors
        sub.operators = []
        for o in ops:
            new_op = schema.OperatorT()
            new_op.__dict__.update(o.__dict__)
            new_op.opcodeIndex = codes.index(o.opcodeIndex)
            new_op.inputs = [new_index[t] if t >= 0 else -1 for t in o.inputs]
            new_op.outputs = [new_index[t] for t in o.outputs]
            sub.operators.append(new_op)
        made_here = {t for o in ops[:-1] for t in o.outputs}
        sub.inputs = [new_index[t] for t in dict.fromkeys(op.inputs)
                      if t >= 0 and t not in made_here and tensors[new_index[t]].buffer == 0]
        sub.outputs = list(sub.operators[-1].outputs)
        one.subgraphs = [sub]
        builder = flatbuffers.Builder(1024)
        builder.Finish(one.Pack(builder), file_identifier=b"TFL3")
        yield index, _op_name(model, op, names), bytes(builder.Output())


CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def pads_folded_into_convs(model) -> dict[int, int]:
    """{PAD op index: conv op index} for each PAD whose output only a CONV_2D / DEPTHWISE_CONV_2D reads (as its
    data input) and that pads only rows and columns: XNNPACK folds it into the conv's own padding."""
    names = _op_names(_schema())
    graph = model.subgraphs[0]
    readers = collections.defaultdict(list)
    for index, op in enumerate(graph.operators):
        for t in dict.fromkeys(op.inputs):
            if t >= 0:
                readers[t].append(index)
    folded = {}
    for index, op in enumerate(graph.operators):
        if _op_name(model, op, names) != "PAD" or len(op.inputs) < 2:
            continue
        out = op.outputs[0]
        paddings = model.buffers[graph.tensors[op.inputs[1]].buffer].data
        if out in graph.outputs or len(readers[out]) != 1 or paddings is None or len(paddings) != 32:
            continue
        pads = np.frombuffer(bytes(paddings), "<i4").reshape(4, 2)
        conv = graph.operators[readers[out][0]]
        if _op_name(model, conv, names) in CONVOLUTIONS and conv.inputs[0] == out and not pads[0].any() and not pads[3].any():
            folded[index] = readers[out][0]
    return folded


def _median_ms(content: bytes, threads: int, runs: int) -> float:
    from python_ref.runner import _interpreter_class

    from .bench import interleaved_times_ms, set_random_inputs

    interp = _interpreter_class()(model_content=content, num_threads=threads)
    interp.allocate_tensors()
    set_random_inputs(interp)
    interp.invoke()                                  # first run: XNNPACK packs weights, sets up buffers
    return float(np.median(interleaved_times_ms({0: interp}, 1, runs)[0]))


def profile_ops(path: str | Path, threads: int = 1, runs: int = 9) -> dict:
    """Per-op medians (ms) of `path` on the LiteRT default CPU path, and the whole model's median."""
    content = read_user_file(path, "model")
    model = read_model(content, str(path))
    try:     # the whole model before its ops: a damaged file that still parses fails here, in one line
        whole_ms = _median_ms(content, threads, runs)
    except (ValueError, RuntimeError, IndexError) as exc:
        raise LitePoseError(f"{path}: LiteRT cannot run this model ({first_line(exc)})") from None
    graph = model.subgraphs[0]
    count = len(graph.operators)
    folded, at_load = pads_folded_into_convs(model), weight_dequantizes(model)
    log(f"timing {count} ops of {path} one at a time ({threads} thread(s), {runs} runs each)")
    rows, started = [], time.monotonic()
    for index, name, one in one_op_models(model, at_load):
        row = {"index": index, "op": name, "ms": None,
               "outputs": [[int(v) for v in graph.tensors[t].shape] for t in graph.operators[index].outputs]}
        if index in folded:
            row["folded_into"] = folded[index]
        if index in at_load:    # timed with the op that reads the weights, as in the model
            row["at_load"] = True
            rows.append(row)
            continue
        try:
            row["ms"] = _median_ms(one, threads, runs)
        except (ValueError, RuntimeError) as exc:   # an op that cannot run alone (control flow, custom op)
            row["error"] = first_line(exc)
            log(f"  op {index} ({name}) cannot run alone: {row['error']}")
        rows.append(row)
        if (index + 1) % 50 == 0 or index + 1 == count:
            log(f"  {index + 1}/{count} ops ({time.monotonic() - started:.0f} s)")
    by_op = collections.defaultdict(lambda: {"count": 0, "ms": 0.0})
    timed = [r for r in rows if _in_sum(r)]
    for r in timed:
        by_op[r["op"]]["count"] += 1
        by_op[r["op"]]["ms"] += r["ms"]
    return {"model": str(path), "sha256": hashlib.sha256(content).hexdigest(), "threads": threads, "runs": runs,
            "whole_model_ms": whole_ms, "sum_of_ops_ms": float(sum(r["ms"] for r in timed)),
            "untimed_ops": sum(r["ms"] is None and "at_load" not in r for r in rows),
            "weight_dequantizes": len(at_load),
            "pads_folded_into_convs": {"count": len(folded),
                                       "ms_alone": round(sum(r["ms"] or 0.0 for r in rows if "folded_into" in r), 4)},
            "by_op": dict(sorted(((k, {"count": v["count"], "ms": round(v["ms"], 4)}) for k, v in by_op.items()),
                                 key=lambda kv: -kv[1]["ms"])),
            "ops": [{**r, "ms": None if r["ms"] is None else round(r["ms"], 4)} for r in rows]}


def markdown_report(report: dict, top: int = 25) -> str:
    total = report["sum_of_ops_ms"]
    lines = [f"# Op profile: {Path(report['model']).name}", "",
             f"{report['threads']} thread(s), median of {report['runs']} runs per op. Whole model "
             f"{report['whole_model_ms']:.2f} ms; sum of the ops timed alone {total:.2f} ms"
             + (f" ({report['untimed_ops']} ops could not run alone)" if report["untimed_ops"] else "") + "."
             + _left_out_note(report), "",
             "| op | count | ms | share |", "|---|---|---|---|"]
    lines += [f"| {name} | {v['count']} | {v['ms']:.2f} | {100 * v['ms'] / total:.1f} % |"
              for name, v in report["by_op"].items()]
    lines += ["", f"Slowest {top} ops:", "", "| # | op | output shape | ms |", "|---|---|---|---|"]
    for r in sorted(filter(_in_sum, report["ops"]), key=lambda r: -r["ms"])[:top]:
        shape = ", ".join("×".join(str(v) for v in s) for s in r["outputs"])
        lines.append(f"| {r['index']} | {r['op']} | {shape} | {r['ms']:.3f} |")
    return "\n".join(lines) + "\n"


def _in_sum(row: dict) -> bool:
    """Timed, and a cost of its own in the whole model (not a PAD folded into its conv)."""
    return row["ms"] is not None and "folded_into" not in row


def _left_out_note(report: dict) -> str:
    folded, note = report["pads_folded_into_convs"], ""
    if folded["count"]:
        note += (f" {folded['count']} PAD(s) read only by a convolution are left out ({folded['ms_alone']:.2f} ms "
                 "alone): XNNPACK folds them into the convolution's padding.")
    if report.get("weight_dequantizes"):
        note += (f" {report['weight_dequantizes']} DEQUANTIZE ops of constant weights run once, when the model is "
                 "loaded: not timed.")
    return note


@click.command("profile")
@click.argument("model_path", metavar="MODEL.tflite")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--runs", type=click.IntRange(1, 10000), default=9, show_default=True, help="Timed runs per op.")
@click.option("--json", "json_out", default=None, help="Write the per-op report as JSON.")
@click.option("--markdown", "markdown_out", default=None, help="Write a markdown summary (default: print it).")
def profile_command(model_path, threads, runs, json_out, markdown_out):
    """Time every op of a .tflite model alone: where the model's latency goes."""
    for out, what in ((json_out, "--json"), (markdown_out, "--markdown")):
        if out:
            check_output_location(out, what)
    report = profile_ops(model_path, threads, runs)
    report["command"] = shlex.join(["litepose", *sys.argv[1:]]) if "profile" in sys.argv else None
    text = markdown_report(report)
    if json_out:
        write_text_atomic(json_out, json.dumps(report, indent=1) + "\n")
    if markdown_out:
        write_text_atomic(markdown_out, text)
    else:
        click.echo(text, nl=False)
