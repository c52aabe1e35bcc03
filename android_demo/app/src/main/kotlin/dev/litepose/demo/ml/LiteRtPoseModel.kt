package dev.litepose.demo.ml

import dev.litepose.posecore.InputType
import dev.litepose.posecore.ModelOutputs
import dev.litepose.posecore.PoseModel
import dev.litepose.posecore.Quantization
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * posecore's [PoseModel] on the LiteRT Interpreter, through the model's signature names (docs/design.md
 * "Model I/O contract": input `image [1, H, W, 3]`, outputs `heatmaps_s4`, `tags_s4`, `heatmaps_s2`, NHWC).
 * Quantised outputs are dequantised with posecore [Quantization]; an integer input is written with its tensor's
 * (scale, zero point), checked by posecore [InputType.inputQuantization].
 *
 * The output arrays are reused: a [ModelOutputs] is valid until the next [run]. Use from one thread.
 * Build it with [create], which wires up the accelerator and falls back to CPU when the GPU cannot be used.
 */
class LiteRtPoseModel private constructor(
    private val interpreter: Interpreter,
    private val gpuDelegate: GpuDelegate?,
    val spec: ModelSpec,
    val status: AcceleratorStatus,
) : PoseModel {
    private class Output(val name: String, val tensor: Tensor) {
        val buffer: ByteBuffer = ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder())
        val values = FloatArray(tensor.numElements())
        val quantization: Quantization? = when (tensor.dataType()) {
            DataType.FLOAT32 -> null
            DataType.UINT8, DataType.INT8 -> tensor.quantizationParams().let { Quantization(it.scale, it.zeroPoint) }
            else -> throw IllegalStateException("output $name has unsupported type ${tensor.dataType()}")
        }

        fun read(): FloatArray {
            buffer.rewind()
            val q = quantization
            if (q == null) buffer.asFloatBuffer().get(values) else q.dequantize(buffer, tensor.dataType() == DataType.INT8, values)
            return values
        }
    }

    private val signatureKey: String
    private val inputName: String
    override val inputWidth: Int
    override val inputHeight: Int
    override val joints: Int
    override val inputType: InputType
    override val inputQuantization: Quantization?
    private val heatmapsS4: Output
    private val tagsS4: Output
    private val heatmapsS2: Output
    private val outputMap: Map<String, Any>
    private val h4: Int
    private val w4: Int

    init {
        val where = spec.asset
        val signatures = interpreter.signatureKeys.associateWith {
            interpreter.getSignatureInputs(it).toList() to interpreter.getSignatureOutputs(it).toList()
        }
        signatureKey = SignatureChoice.pick(signatures, INPUT, OUTPUTS)
            ?: throw IllegalStateException(
                if (signatures.isEmpty()) "$where: the model has no signature; convert it with `litepose convert` (README)"
                else "$where: no signature with input '$INPUT' and outputs ${OUTPUTS.joinToString()} (" +
                    signatures.entries.joinToString("; ") { (k, io) -> "$k: inputs ${io.first} outputs ${io.second}" } + ")",
            )
        val inputs = signatures.getValue(signatureKey).first
        inputName = if (INPUT in inputs) INPUT else inputs.single()
        val input = interpreter.getInputTensorFromSignature(inputName, signatureKey)
        val shape = input.shape()
        check(shape.size == 4 && shape[0] == 1 && shape[3] == 3) { "$where: input shape ${shape.contentToString()} is not [1, H, W, 3]" }
        inputHeight = shape[1]
        inputWidth = shape[2]
        check(inputHeight == spec.inputHeight && inputWidth == spec.inputWidth) {
            "$where: input is ${inputHeight}x$inputWidth but the manifest says ${spec.inputHeight}x${spec.inputWidth}"
        }
        inputType = when (input.dataType()) {
            DataType.FLOAT32 -> InputType.FLOAT32
            DataType.UINT8 -> InputType.UINT8
            DataType.INT8 -> InputType.INT8
            else -> throw IllegalStateException("$where: unsupported input type ${input.dataType()}")
        }
        val inputParams = input.quantizationParams()
        inputQuantization = try {
            inputType.inputQuantization(inputParams.scale, inputParams.zeroPoint)
        } catch (e: IllegalArgumentException) {
            throw IllegalStateException("$where: input '$inputName': ${e.message}")
        }
        fun output(name: String) = Output(name, interpreter.getOutputTensorFromSignature(name, signatureKey))
        heatmapsS4 = output(HEATMAPS_S4)
        tagsS4 = output(TAGS_S4)
        heatmapsS2 = output(HEATMAPS_S2)
        val s4 = heatmapsS4.tensor.shape()
        check(s4.size == 4 && s4[1] * 4 == inputHeight && s4[2] * 4 == inputWidth) {
            "$where: $HEATMAPS_S4 shape ${s4.contentToString()} is not [1, H/4, W/4, J]"
        }
        h4 = s4[1]
        w4 = s4[2]
        joints = s4[3]
        check(joints == spec.joints) { "$where: the model has $joints joints but the manifest says ${spec.joints}" }
        check(tagsS4.tensor.shape().contentEquals(s4)) { "$where: $TAGS_S4 shape differs from $HEATMAPS_S4" }
        check(heatmapsS2.tensor.shape().contentEquals(intArrayOf(1, 2 * h4, 2 * w4, joints))) {
            "$where: $HEATMAPS_S2 shape ${heatmapsS2.tensor.shape().contentToString()} is not [1, H/2, W/2, J]"
        }
        outputMap = mapOf(HEATMAPS_S4 to heatmapsS4.buffer, TAGS_S4 to tagsS4.buffer, HEATMAPS_S2 to heatmapsS2.buffer)
    }

    override fun run(input: ByteBuffer): ModelOutputs {
        for (o in listOf(heatmapsS4, tagsS4, heatmapsS2)) o.buffer.rewind()
        input.rewind()
        interpreter.runSignature(mapOf(inputName to input), outputMap, signatureKey)
        return ModelOutputs(heatmapsS4.read(), tagsS4.read(), heatmapsS2.read(), h4, w4, joints)
    }

    override fun close() {
        interpreter.close()
        gpuDelegate?.close()
    }

    /** One run on a blank input: a GPU delegate can accept a graph and fail only when it first runs it. */
    private fun warmUp() {
        val bytesPerValue = if (inputType == InputType.FLOAT32) 4 else 1
        run(ByteBuffer.allocateDirect(inputWidth * inputHeight * 3 * bytesPerValue).order(ByteOrder.nativeOrder()))
    }

    companion object {
        const val INPUT = "image"
        const val HEATMAPS_S4 = "heatmaps_s4"
        const val TAGS_S4 = "tags_s4"
        const val HEATMAPS_S2 = "heatmaps_s2"
        val OUTPUTS = listOf(HEATMAPS_S4, TAGS_S4, HEATMAPS_S2)

        /**
         * Builds the interpreter for `model` (a direct or memory-mapped buffer of the .tflite file) on `accelerator`.
         * GPU: used only if the device is on LiteRT's GPU compatibility list and the delegate accepts the model;
         * otherwise CPU with XNNPACK and `threads` threads, with the reason in [AcceleratorStatus.fallbackReason].
         */
        fun create(model: ByteBuffer, spec: ModelSpec, accelerator: Accelerator, threads: Int): LiteRtPoseModel {
            var reason: String? = null
            if (accelerator == Accelerator.GPU) {
                when (val gpu = tryGpu(model, spec, threads)) {
                    is GpuAttempt.Ready -> return gpu.model
                    is GpuAttempt.Failed -> reason = gpu.reason
                }
            }
            val options = Interpreter.Options().setUseXNNPACK(true).setNumThreads(threads)
            val interpreter = Interpreter(model, options)
            return try {
                LiteRtPoseModel(interpreter, null, spec, AcceleratorStatus(accelerator, Accelerator.CPU, threads, reason))
            } catch (e: RuntimeException) {
                interpreter.close()
                throw e
            }
        }

        private sealed class GpuAttempt {
            class Ready(val model: LiteRtPoseModel) : GpuAttempt()
            class Failed(val reason: String) : GpuAttempt()
        }

        /** `threads`: for the ops the delegate leaves to the CPU. */
        private fun tryGpu(model: ByteBuffer, spec: ModelSpec, threads: Int): GpuAttempt {
            val compatibility = try {
                CompatibilityList()
            } catch (e: LinkageError) {
                return GpuAttempt.Failed("GPU delegate library not available (${e.message})")
            }
            try {
                if (!compatibility.isDelegateSupportedOnThisDevice) {
                    return GpuAttempt.Failed("this GPU is not on LiteRT's compatibility list")
                }
                // Building the delegate can fail too (no OpenCL/GLES context): inside the try, so it falls back to CPU.
                var delegate: GpuDelegate? = null
                var interpreter: Interpreter? = null
                return try {
                    val gpu = GpuDelegate(compatibility.bestOptionsForThisDevice)
                    delegate = gpu
                    val gpuInterpreter = Interpreter(model, Interpreter.Options().addDelegate(gpu).setNumThreads(threads))
                    interpreter = gpuInterpreter
                    val poseModel = LiteRtPoseModel(gpuInterpreter, gpu, spec, AcceleratorStatus(Accelerator.GPU, Accelerator.GPU, threads, null))
                    poseModel.warmUp() // a failure here falls back to CPU below, instead of failing the first frame
                    GpuAttempt.Ready(poseModel)
                } catch (e: RuntimeException) {
                    interpreter?.close()
                    delegate?.close()
                    GpuAttempt.Failed("the GPU delegate could not run the model (${e.message?.lineSequence()?.firstOrNull() ?: e.javaClass.simpleName})")
                }
            } catch (e: LinkageError) {
                return GpuAttempt.Failed("GPU delegate library not available (${e.message})")
            } catch (e: RuntimeException) {
                return GpuAttempt.Failed("the GPU compatibility check failed (${e.message ?: e.javaClass.simpleName})")
            } finally {
                compatibility.close()
            }
        }
    }
}
