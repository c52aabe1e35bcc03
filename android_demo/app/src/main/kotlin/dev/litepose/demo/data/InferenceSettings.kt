package dev.litepose.demo.data

import dev.litepose.demo.ml.Accelerator
import dev.litepose.posecore.DecoderParams
import dev.litepose.posecore.ScaleMode

/**
 * Everything the user can change while the camera runs. Changing [modelIndex], [accelerator] or [threads]
 * rebuilds the interpreter; the thresholds are set on the existing decoder. The app starts on
 * ModelCatalog.defaultModelIndex (the first int8 model), not on the default 0.
 *
 * @property minPersonScore persons below this score are not shown (posecore PosePipeline filter).
 * @property keypointThreshold joints (and the bones between them) at or below this value are not drawn.
 */
data class InferenceSettings(
    val modelIndex: Int = 0,
    val accelerator: Accelerator = Accelerator.CPU,
    val threads: Int = 4,
    val detectionThreshold: Double = DecoderParams().detectionThreshold,
    val tagThreshold: Double = DecoderParams().tagThreshold,
    val minPersonScore: Float = 0.1f,
    val keypointThreshold: Float = 0.1f,
    val scaleMode: ScaleMode = ScaleMode.FILL,
) {
    init {
        require(threads in 1..MAX_THREADS) { "threads must be in 1..$MAX_THREADS, got $threads" }
    }

    val decoderParams: DecoderParams get() = DecoderParams(detectionThreshold = detectionThreshold, tagThreshold = tagThreshold)

    /** True if going from `this` to `other` needs a new interpreter (not just a new decoder). */
    fun needsNewInterpreter(other: InferenceSettings): Boolean =
        modelIndex != other.modelIndex || accelerator != other.accelerator || threads != other.threads

    companion object {
        const val MAX_THREADS = 8
    }
}
