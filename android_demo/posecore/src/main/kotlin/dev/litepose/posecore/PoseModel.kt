package dev.litepose.posecore

import java.nio.ByteBuffer

/** Element type of the model's `image` input (docs/design.md "Model I/O contract"). */
enum class InputType(val bytesPerChannel: Int) {
    /** uint8 RGB 0..255 (scale 1, zero point 0): the default for INT8 models. */
    UINT8(1),

    /** int8 RGB, value - 128 (scale 1, zero point -128). */
    INT8(1),

    /** float32 RGB 0..255 in native byte order. */
    FLOAT32(4),
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

    /**
     * Runs one inference on `input` (`[1, H, W, 3]` RGB, [inputType], position 0, limit = size) and returns
     * the three outputs dequantised (see [Quantization]).
     */
    fun run(input: ByteBuffer): ModelOutputs
}
