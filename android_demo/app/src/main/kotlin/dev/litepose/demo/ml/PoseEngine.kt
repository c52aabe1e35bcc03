package dev.litepose.demo.ml

import android.content.Context
import dev.litepose.demo.data.InferenceSettings
import dev.litepose.posecore.FastDecoder
import dev.litepose.posecore.PosePipeline
import dev.litepose.posecore.PoseResult
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.channels.FileChannel

/**
 * Owns the current model and posecore [PosePipeline] and swaps them when the settings change, closing the old
 * interpreter. Every method must be called on the one analysis thread (the camera frames arrive there too), so
 * no lock is needed and a frame never sees a half-built model.
 */
class PoseEngine(private val context: Context, val catalog: ModelCatalog) : AutoCloseable {
    private var model: LiteRtPoseModel? = null
    private var pipeline: PosePipeline? = null

    var settings: InferenceSettings? = null
        private set

    /** The settings whose model failed to load or to run: not tried again until model, accelerator or threads change. */
    private var failed: InferenceSettings? = null

    val status: AcceleratorStatus? get() = model?.status
    val spec: ModelSpec? get() = model?.spec
    val ready: Boolean get() = pipeline != null

    /**
     * Applies `new`: rebuilds the interpreter and pipeline only if model, accelerator or threads changed; threshold
     * changes (every slider step) go into the existing pipeline and decoder without reallocating their buffers.
     * Returns the accelerator status if the interpreter was rebuilt, else null. On failure no model is active, and
     * a model that failed is not loaded again for settings that would load it the same way (every slider step
     * would otherwise retry the whole load, GPU attempt included); null is returned then.
     */
    fun apply(new: InferenceSettings): AcceleratorStatus? {
        require(new.modelIndex in catalog.models.indices) { "no bundled model #${new.modelIndex}" }
        val lastFailed = failed
        if (model == null && lastFailed != null && !lastFailed.needsNewInterpreter(new)) return null
        val old = settings
        var rebuilt: AcceleratorStatus? = null
        var current = model
        if (current == null || old == null || old.needsNewInterpreter(new)) {
            current?.close()
            model = null
            pipeline = null
            settings = null
            val spec = catalog.models[new.modelIndex]
            current = try {
                LiteRtPoseModel.create(mapAsset(spec.asset), spec, new.accelerator, new.threads)
            } catch (e: Exception) {
                failed = new
                throw e
            }
            failed = null
            model = current
            rebuilt = current.status
        }
        val existing = pipeline
        if (existing != null && existing.model === current) {
            existing.decoder.params = new.decoderParams
            existing.minPersonScore = new.minPersonScore
        } else {
            pipeline = PosePipeline(current, FastDecoder(new.decoderParams), new.minPersonScore)
        }
        settings = new
        return rebuilt
    }

    /** One ARGB frame (sensor orientation) through pre-processing, inference and decoding. */
    fun process(frame: IntArray, width: Int, height: Int, rotationDegrees: Int): PoseResult {
        val p = pipeline ?: throw IllegalStateException("no model loaded")
        return p.process(frame, width, height, rotationDegrees)
    }

    /** Closes a model that failed while running; like a failed load, it is not loaded again for the same settings. */
    fun closeAfterFailure() {
        val current = settings
        close()
        failed = current
    }

    override fun close() {
        model?.close()
        model = null
        pipeline = null
        settings = null
    }

    /** Memory-maps an uncompressed asset (the build stores .tflite files uncompressed: noCompress). */
    private fun mapAsset(asset: String): ByteBuffer =
        context.assets.openFd(asset).use { fd ->
            FileInputStream(fd.fileDescriptor).use { stream ->
                stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
        }
}
