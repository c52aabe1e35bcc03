package dev.litepose.posecore

import kotlin.math.abs
import kotlin.math.max
import kotlin.math.min

/**
 * The fast bottom-up decoder of docs/fast-decoder.md (python_ref `decode_fast`): aggregate at half
 * input resolution, NMS, top-k, match by tag (Hungarian), adjust, score, refine.
 *
 * Arithmetic follows the spec's float32/float64 rules literally so that INT8 outputs, full of exact
 * ties, decode to the same people as the Python reference. The per-pixel steps 1-4 are [PeakDetector]
 * (a streaming, vectorisable pass); the rest works on at most J × top_k peaks. An instance reuses
 * scratch buffers between calls: use one decoder per thread.
 */
class FastDecoder(params: DecoderParams = DecoderParams()) {
    /**
     * May be changed between calls (the app's threshold sliders): the scratch buffers are kept, and the
     * peak detector is rebuilt only when [DecoderParams.nmsKernel] or [DecoderParams.topK] change.
     */
    var params: DecoderParams = params
        set(value) {
            if (value.nmsKernel != field.nmsKernel || value.topK != field.topK) detector = PeakDetector(value.nmsKernel, value.topK)
            field = value
        }

    /** One NMS peak of one joint: half-resolution cell, aggregated value, upsampled tag. */
    private class Peak(val x: Int, val y: Int, val value: Float, val tag: Float)

    private class JointPeaks(val candidates: List<Peak>, val refine: List<Peak>)

    /** A person under construction: J × (cell x, cell y, value); value 0 = not detected. */
    private class Group(joints: Int) {
        val cellX = IntArray(joints)
        val cellY = IntArray(joints)
        val value = FloatArray(joints)
        var tagSum = 0.0
        var tagCount = 0
        val tag: Double get() = tagSum / tagCount

        fun set(joint: Int, peak: Peak) {
            cellX[joint] = peak.x
            cellY[joint] = peak.y
            value[joint] = peak.value
        }
    }

    private var detector = PeakDetector(params.nmsKernel, params.topK) // steps 1-4, reuses its buffers

    /**
     * Decodes one image.
     *
     * @param heatmapsS4 `[h4, w4, joints]` float32, NHWC flattened (batch dropped), dequantised.
     * @param tagsS4 `[h4, w4, joints]`, same layout.
     * @param heatmapsS2 `[2*h4, 2*w4, joints]`, same layout.
     * @return persons in creation order, keypoints in model-input pixels (corner convention); nothing
     *   is filtered out, callers filter by score.
     */
    fun decode(
        heatmapsS4: FloatArray,
        tagsS4: FloatArray,
        heatmapsS2: FloatArray,
        h4: Int,
        w4: Int,
        joints: Int,
    ): List<Person> {
        require(h4 >= 0 && w4 >= 0 && joints >= 0) { "negative output shape h4=$h4 w4=$w4 joints=$joints" }
        val h2 = 2 * h4
        val w2 = 2 * w4
        require(heatmapsS4.size == h4 * w4 * joints) {
            "heatmaps_s4 has ${heatmapsS4.size} values, expected $h4*$w4*$joints"
        }
        require(tagsS4.size == h4 * w4 * joints) { "tags_s4 has ${tagsS4.size} values, expected $h4*$w4*$joints" }
        require(heatmapsS2.size == h2 * w2 * joints) {
            "heatmaps_s2 has ${heatmapsS2.size} values, expected $h2*$w2*$joints"
        }
        if (h4 == 0 || w4 == 0 || joints == 0) return emptyList() // a zero dimension: no persons

        detector.run(heatmapsS4, heatmapsS2, h4, w4, joints)
        val peaks = Array(joints) { j -> jointPeaks(j, w2, tagsS4, h4, w4, joints) }
        val groups = matchByTag(Array(joints) { peaks[it].candidates }, joints)

        val people = ArrayList<Person>(groups.size)
        for (group in groups) {
            // Score: mean of the J values (float64, joint index order), taken before refine.
            var sum = 0.0
            for (j in 0 until joints) sum += group.value[j].toDouble()
            val score = (sum / joints).toFloat()

            val keypoints = Array(joints) { j ->
                if (group.value[j] > 0f) adjusted(group.cellX[j], group.cellY[j], group.value[j], j, h2, w2)
                else UNDETECTED
            }
            if (params.refine && group.tagCount > 0) {
                refine(group, keypoints, h2, w2) { j -> peaks[j].refine }
            }
            people.add(Person(keypoints.asList(), score))
        }
        return people
    }

    /**
     * The NMS peaks of joint j with det > 0, by value descending then flat index ascending (step 4
     * order), cut to top_k: refine's list. The matching candidates are its prefix with
     * `det > detection_threshold` (compared in float64, as python_ref). Each peak carries the upsampled
     * tag at its cell.
     */
    private fun jointPeaks(j: Int, w2: Int, tags: FloatArray, h4: Int, w4: Int, joints: Int): JointPeaks {
        val refine = List(detector.peakCount(j)) { k ->
            val p = detector.peakIndex(j, k)
            val x = p % w2
            val y = p / w2
            Peak(x, y, detector.det(x, y, j), upsampledAt(tags, h4, w4, joints, j, x, y))
        }
        var n = 0
        while (n < refine.size && refine[n].value.toDouble() > params.detectionThreshold) n++
        return JointPeaks(refine.subList(0, n), refine)
    }

    /** Step 5: greedy joint-by-joint grouping with a min-cost assignment per joint. */
    private fun matchByTag(candidates: Array<List<Peak>>, joints: Int): List<Group> {
        val groups = ArrayList<Group>()
        for (j in visitingOrder(joints)) {
            val peaks = candidates[j]
            if (peaks.isEmpty()) continue
            if (groups.isEmpty()) {
                for (peak in peaks) groups.add(newGroup(joints, j, peak))
                continue
            }
            val active = min(groups.size, params.maxNumPeople)
            val rows = peaks.size
            val cols = max(rows, active)
            val dist = DoubleArray(rows * active)
            val cost = DoubleArray(rows * cols) { PADDING_COST }
            for (r in 0 until rows) {
                val tag = peaks[r].tag.toDouble()
                val value = peaks[r].value.toDouble()
                for (c in 0 until active) {
                    val d = abs(tag - groups[c].tag)
                    dist[r * active + c] = d
                    cost[r * cols + c] = Math.rint(d) * 100.0 - value
                }
            }
            val colForRow = LinearSumAssignment.solve(cost, rows, cols)
            for (r in 0 until rows) {
                val c = colForRow[r]
                if (c < active && dist[r * active + c] < params.tagThreshold) {
                    val group = groups[c]
                    group.set(j, peaks[r])
                    group.tagSum += peaks[r].tag.toDouble()
                    group.tagCount += 1
                } else {
                    groups.add(newGroup(joints, j, peaks[r]))
                }
            }
        }
        return groups
    }

    private fun newGroup(joints: Int, j: Int, peak: Peak): Group =
        Group(joints).also {
            it.set(j, peak)
            it.tagSum = peak.tag.toDouble()
            it.tagCount = 1
        }

    /** Step 8: fill each undetected joint with the peak that best fits the person's mean tag. */
    private inline fun refine(
        group: Group, keypoints: Array<Keypoint>, h2: Int, w2: Int, peaksOf: (Int) -> List<Peak>,
    ) {
        val meanTag = group.tag
        for (j in keypoints.indices) {
            if (group.value[j] != 0f) continue
            val peaks = peaksOf(j)
            var best: Peak? = null
            var bestScore = Double.NEGATIVE_INFINITY
            for (peak in peaks) {
                val s = peak.value.toDouble() - Math.rint(abs(peak.tag.toDouble() - meanTag))
                if (best == null || s > bestScore) {
                    best = peak
                    bestScore = s
                }
            }
            if (best != null) keypoints[j] = adjusted(best.x, best.y, best.value, j, h2, w2)
        }
    }

    /** Steps 6 and 8: position in model-input pixels, shifted a quarter cell towards the larger neighbour. */
    private fun adjusted(x: Int, y: Int, value: Float, j: Int, h2: Int, w2: Int): Keypoint {
        var dx = 0f
        var dy = 0f
        if (params.adjust) {
            val d = detector
            dx = if (d.det(min(x + 1, w2 - 1), y, j) > d.det(max(x - 1, 0), y, j)) 0.25f else -0.25f
            dy = if (d.det(x, min(y + 1, h2 - 1), j) > d.det(x, max(y - 1, 0), j)) 0.25f else -0.25f
        }
        return Keypoint(2f * (x.toFloat() + 0.5f + dx), 2f * (y.toFloat() + 0.5f + dy), value)
    }

    companion object {
        private const val PADDING_COST = 1e10
        private val UNDETECTED = Keypoint(0f, 0f, 0f)
        private val COCO_ORDER = intArrayOf(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)

        /** Joint visiting order of the official grouping: the first J entries of the COCO order where they
         *  are a permutation of 0..J-1 (J <= 7 or 14..17: CrowdPose, COCO), else 0..J-1. */
        fun visitingOrder(joints: Int): IntArray {
            val prefix = COCO_ORDER.take(joints)
            return if (prefix.sorted() == (0 until joints).toList()) prefix.toIntArray() else IntArray(joints) { it }
        }

        private const val LIMIT = 1e6f

        /** Sanitising: NaN/±inf -> 0, then clamp to [-1e6, 1e6] (real outputs stay within ±100). */
        private fun finite(v: Float): Float = if (v.isFinite()) v.coerceIn(-LIMIT, LIMIT) else 0f

        /**
         * 1-D ×2 bilinear rule for output index o: o = 0 -> v[0] (torch's clamped tap, as python_ref;
         * equal to the 0.25/0.75 sum in every float32 tried, kept literal anyway); other even o -> 0.25f*v[i-1] + 0.75f*v[i];
         * odd o -> 0.75f*v[i] + 0.25f*v[min(i+1, n-1)]. Float32 products, one float32 add.
         */
        private fun blend(o: Int, neighbour: Float, centre: Float): Float = when {
            o == 0 -> centre
            (o and 1) == 0 -> 0.25f * neighbour + 0.75f * centre
            else -> 0.75f * centre + 0.25f * neighbour
        }

        /** Horizontal pass at output column ox of one input row (row base = iy * w4). */
        private fun upsampleX(src: FloatArray, rowBase: Int, w4: Int, joints: Int, j: Int, ox: Int): Float {
            val ix = ox shr 1
            val other = if ((ox and 1) == 0) max(ix - 1, 0) else min(ix + 1, w4 - 1)
            return blend(ox, finite(src[(rowBase + other) * joints + j]), finite(src[(rowBase + ix) * joints + j]))
        }

        /** up2(src)[oy, ox, j], bit-identical to the full two-pass upsampling. */
        internal fun upsampledAt(src: FloatArray, h4: Int, w4: Int, joints: Int, j: Int, ox: Int, oy: Int): Float {
            val iy = oy shr 1
            val other = if ((oy and 1) == 0) max(iy - 1, 0) else min(iy + 1, h4 - 1)
            val centre = upsampleX(src, iy * w4, w4, joints, j, ox)
            val neighbour = upsampleX(src, other * w4, w4, joints, j, ox)
            return blend(oy, neighbour, centre)
        }
    }
}
