package dev.litepose.posecore

/**
 * Parameters of the fast decoder; defaults are those of docs/fast-decoder.md (python_ref `FastDecoderParams`).
 *
 * @property detectionThreshold a peak is a candidate iff `value > detectionThreshold` (strict, compared in float64
 *   like python_ref: a det of exactly 0.1f = 0.100000001 passes the default).
 * @property tagThreshold a candidate joins a person iff `|tag - personTag| < tagThreshold` (strict).
 * @property topK peaks per joint kept after NMS.
 * @property maxNumPeople only the first N persons (creation order) take part in matching.
 * @property nmsKernel max-pool window at half input resolution (5: chosen by measurement, docs/fast-decoder.md).
 * @property adjust quarter-cell shift towards the larger neighbour.
 * @property refine fill undetected joints from the peaks of that joint.
 */
data class DecoderParams(
    val detectionThreshold: Double = 0.1,
    val tagThreshold: Double = 1.0,
    val topK: Int = 30,
    val maxNumPeople: Int = 30,
    val nmsKernel: Int = 5,
    val adjust: Boolean = true,
    val refine: Boolean = true,
) {
    init {
        require(topK >= 1) { "topK must be >= 1, got $topK" }
        require(maxNumPeople >= 1) { "maxNumPeople must be >= 1, got $maxNumPeople" }
        require(nmsKernel >= 1 && nmsKernel % 2 == 1) { "nmsKernel must be odd and >= 1, got $nmsKernel" }
        require(detectionThreshold.isFinite()) { "detectionThreshold must be finite, got $detectionThreshold" }
        require(tagThreshold.isFinite()) { "tagThreshold must be finite, got $tagThreshold" }
    }
}
