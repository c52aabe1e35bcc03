package dev.litepose.demo.camera

import kotlin.math.abs

/** A width × height pair without Android types (android.util.Size is not usable in JVM tests). */
data class FrameSize(val width: Int, val height: Int) {
    val area: Long get() = width.toLong() * height
    val aspect: Double get() = width.toDouble() / height
    override fun toString(): String = "${width}x$height"
}

/**
 * Picks the camera stream sizes: an analysis size near [targetAnalysis] (small: it is converted on the CPU each
 * frame) and a preview size with the SAME aspect ratio, so the overlay computed on analysis frames lines up with
 * the preview under one fit/fill transform.
 */
object SizeChooser {
    private const val ASPECT_TOLERANCE = 0.01

    /** Returns (analysis, preview); throws if the camera offers no sizes. */
    fun choose(
        analysisSizes: List<FrameSize>,
        previewSizes: List<FrameSize>,
        targetAnalysis: FrameSize = FrameSize(640, 480),
        maxPreview: FrameSize = FrameSize(1920, 1080),
    ): Pair<FrameSize, FrameSize> {
        require(analysisSizes.isNotEmpty()) { "the camera offers no YUV_420_888 sizes" }
        require(previewSizes.isNotEmpty()) { "the camera offers no preview sizes" }
        // Analysis candidates in order of preference: closest area to the target, ties to the target's aspect.
        val byPreference = analysisSizes.sortedWith(
            compareBy<FrameSize>({ abs(it.area - targetAnalysis.area) }, { abs(it.aspect - targetAnalysis.aspect) }),
        )
        val fitsPreview = { p: FrameSize -> p.width <= maxPreview.width && p.height <= maxPreview.height }
        for (analysis in byPreference) {
            val preview = previewSizes
                .filter { abs(it.aspect - analysis.aspect) <= ASPECT_TOLERANCE * analysis.aspect && fitsPreview(it) }
                .maxByOrNull { it.area }
            if (preview != null) return analysis to preview
        }
        // No aspect match at all: keep the best analysis size and the largest preview that fits.
        val preview = previewSizes.filter(fitsPreview).maxByOrNull { it.area } ?: previewSizes.minBy { it.area }
        return byPreference.first() to preview
    }
}
