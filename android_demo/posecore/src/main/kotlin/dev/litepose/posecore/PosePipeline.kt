package dev.litepose.posecore

import java.nio.ByteBuffer

/** Wall-clock time of each pipeline stage in milliseconds. */
data class StageTimings(val preMs: Double, val inferMs: Double, val decodeMs: Double) {
    val totalMs: Double get() = preMs + inferMs + decodeMs
}

/**
 * Result of one frame: persons in **upright image pixels** (map them to the screen with
 * [FrameGeometry.view]), with scores >= the pipeline's `minPersonScore`, in decoder order.
 */
data class PoseResult(val persons: List<Person>, val timings: StageTimings, val letterbox: Letterbox)

/**
 * Camera frame -> model input (rotation + letterbox) -> model -> fast decoder -> upright image pixels.
 *
 * Holds one input buffer and one decoder: call [process] from one thread at a time. Thresholds can change
 * between frames without reallocating anything: set [minPersonScore] and `decoder.params`.
 */
class PosePipeline(
    val model: PoseModel,
    val decoder: FastDecoder = FastDecoder(),
    var minPersonScore: Float = 0f,
) {
    private var writer: InputWriter? = null
    private var input: ByteBuffer? = null

    /** One frame (row-major ARGB in sensor orientation) through every stage. */
    fun process(frame: IntArray, frameW: Int, frameH: Int, rotationDegrees: Int): PoseResult {
        val t0 = System.nanoTime()
        val writer = writerFor(frameW, frameH, rotationDegrees)
        val buffer = input!!
        writer.write(frame, buffer)
        val t1 = System.nanoTime()
        val outputs = model.run(buffer)
        val t2 = System.nanoTime()
        val persons = decodeToImage(outputs, writer.letterbox)
        val t3 = System.nanoTime()
        return PoseResult(persons, StageTimings(ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)), writer.letterbox)
    }

    /** Decode stage alone: model outputs -> persons in upright image pixels (score-filtered). */
    fun decodeToImage(outputs: ModelOutputs, letterbox: Letterbox): List<Person> {
        require(outputs.joints == model.joints) { "outputs have ${outputs.joints} joints, the model ${model.joints}" }
        require(outputs.h4 * 4 == model.inputHeight && outputs.w4 * 4 == model.inputWidth) {
            "outputs are ${outputs.h4}x${outputs.w4} at stride 4, the model input ${model.inputHeight}x${model.inputWidth}"
        }
        val persons = decoder.decode(outputs.heatmapsS4, outputs.tagsS4, outputs.heatmapsS2, outputs.h4, outputs.w4, outputs.joints)
        return persons.filter { it.score >= minPersonScore }.map { letterbox.toImage(it) }
    }

    private fun writerFor(frameW: Int, frameH: Int, rotationDegrees: Int): InputWriter {
        val current = writer
        if (current != null && current.camera.frameW == frameW && current.camera.frameH == frameH &&
            current.camera.rotationDegrees == rotationDegrees
        ) return current
        val camera = CameraTransform(frameW, frameH, rotationDegrees)
        val letterbox = Letterbox(camera.uprightW, camera.uprightH, model.inputWidth, model.inputHeight)
        return InputWriter(camera, letterbox, model.inputType, model.inputQuantization).also {
            writer = it
            if ((input?.capacity() ?: -1) != it.bufferSize) input = it.allocate()
        }
    }

    private fun ms(nanos: Long): Double = nanos / 1e6
}
