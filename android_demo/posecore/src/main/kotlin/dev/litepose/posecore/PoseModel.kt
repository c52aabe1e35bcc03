package dev.litepose.posecore

import java.nio.ByteBuffer

/**
 * Element type of the model's `image` input (docs/design.md "Model I/O contract"). The pixel values are RGB
 * 0..255 in every case; integer inputs store them quantised, `q = round(v / scale) + zeroPoint`.
 *
 * @property storedRange the integers an element can hold (unused for FLOAT32).
 */
enum class InputType(val bytesPerChannel: Int, val storedRange: IntRange) {
    /** uint8 RGB 0..255 (contract: scale 1, zero point 0): the default for INT8 models. */
    UINT8(1, 0..255),

    /** int8 RGB, value - 128 (contract: scale 1, zero point -128). */
    INT8(1, -128..127),

    /** float32 RGB 0..255 in native byte order. */
    FLOAT32(4, 0..0),
    ;

    /** The contract's quantisation of this type; null for FLOAT32, which takes the values as they are. */
    val standardQuantization: Quantization?
        get() = when (this) {
            UINT8 -> Quantization(1f, 0)
            INT8 -> Quantization(1f, -128)
            FLOAT32 -> null
        }

    /**
     * The quantisation to write pixels with, from the input tensor's (scale, zero point) as the interpreter
     * reports them: null for FLOAT32; the contract's for a uint8 input without parameters (scale 0 = raw 0..255).
     * Throws [IllegalArgumentException] naming the values when pixels 0..255 cannot be written faithfully.
     */
    fun inputQuantization(scale: Float, zeroPoint: Int): Quantization? {
        if (this == FLOAT32) return null
        if (this == UINT8 && scale == 0f && zeroPoint == 0) return standardQuantization
        require(scale.isFinite() && scale > 0f) {
            "${name.lowercase()} input with quantisation scale $scale, zero point $zeroPoint: the scale must be finite and > 0 " +
                "(contract: scale 1, zero point ${standardQuantization?.zeroPoint})"
        }
        return Quantization(scale, zeroPoint).also { checkWritable(it) }
    }

    /** Fails unless `q` stores every pixel value 0..255 to within half a step (no clipping of dark or bright pixels). */
    internal fun checkWritable(q: Quantization) {
        val what = "${name.lowercase()} input with quantisation scale ${q.scale}, zero point ${q.zeroPoint}"
        require(this != FLOAT32) { "a float32 input takes no quantisation, got scale ${q.scale}, zero point ${q.zeroPoint}" }
        require(q.zeroPoint in storedRange) { "$what: the zero point is outside ${storedRange.first}..${storedRange.last}" }
        val lowest = q.scale.toDouble() * (storedRange.first - q.zeroPoint)
        val highest = q.scale.toDouble() * (storedRange.last - q.zeroPoint)
        require(lowest <= q.scale / 2.0 && highest >= 255.0 - q.scale / 2.0) {
            "$what represents pixel values %.4g..%.4g, not 0..255: the model expects another input range than the contract's RGB 0..255"
                .format(lowest, highest)
        }
    }
}

/**
 * Raw outputs of one inference, dequantised to float32, NHWC flattened with the batch dimension dropped:
 * `heatmapsS4 [h4, w4, joints]`, `tagsS4 [h4, w4, joints]`, `heatmapsS2 [2*h4, 2*w4, joints]`.
 */
class ModelOutputs(
    val heatmapsS4: FloatArray,
    val tagsS4: FloatArray,
    val heatmapsS2: FloatArray,
    val h4: Int,
    val w4: Int,
    val joints: Int,
) {
    init {
        require(h4 > 0 && w4 > 0 && joints > 0) { "empty output shape h4=$h4 w4=$w4 joints=$joints" }
        require(heatmapsS4.size == h4 * w4 * joints) { "heatmaps_s4 has ${heatmapsS4.size} values, expected $h4*$w4*$joints" }
        require(tagsS4.size == h4 * w4 * joints) { "tags_s4 has ${tagsS4.size} values, expected $h4*$w4*$joints" }
        require(heatmapsS2.size == 4 * h4 * w4 * joints) {
            "heatmaps_s2 has ${heatmapsS2.size} values, expected ${2 * h4}*${2 * w4}*$joints"
        }
    }
}

/**
 * The seam between the pipeline and an inference engine (the app implements it with LiteRT).
 * Takes a filled input buffer, not a Bitmap, so everything around it runs in JVM tests.
 */
interface PoseModel : AutoCloseable {
    /** Model input width W and height H in pixels. */
    val inputWidth: Int
    val inputHeight: Int

    /** Number of joints J (14 CrowdPose, 17 COCO). */
    val joints: Int

    /** Element type of the input buffer [run] expects. */
    val inputType: InputType get() = InputType.UINT8

    /** How integer inputs are quantised; null = the contract's for [inputType] (see [InputType.inputQuantization]). */
    val inputQuantization: Quantization? get() = null

    /**
     * Runs one inference on `input` (`[1, H, W, 3]` RGB, [inputType], position 0, limit = size) and returns
     * the three outputs dequantised (see [Quantization]).
     */
    fun run(input: ByteBuffer): ModelOutputs
}
