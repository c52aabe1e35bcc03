package dev.litepose.posecore

import kotlin.math.abs
import kotlin.math.max
import kotlin.math.min

/**
 * Test oracle for [FastDecoder]: the previous, plainly structured implementation of docs/fast-decoder.md
 * (per-joint planes, whole-plane x and y passes, a full max-pool array, a full sort of the peaks),
 * validated against python_ref's golden vectors before the streaming rewrite. FastDecoderEquivalenceTest
 * requires the two to agree bit for bit. Kept simple on purpose: do not optimise it.
 */
class ReferenceDecoder(val params: DecoderParams = DecoderParams()) {

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

    private var det = FloatArray(0)
    private var rowScratch = FloatArray(0)
    private var planar4 = FloatArray(0)
    private var poolScratch = FloatArray(0)
    private var pooledScratch = FloatArray(0)

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

        aggregate(heatmapsS4, heatmapsS2, h4, w4, joints)
        val peaks = Array(joints) { j -> jointPeaks(j, h2, w2, tagsS4, h4, w4, joints) }
        val groups = matchByTag(Array(joints) { peaks[it].candidates }, joints)
        val plane = h2 * w2

        val people = ArrayList<Person>(groups.size)
        for (group in groups) {
            // Score: mean of the J values (float64, joint index order), taken before refine.
            var sum = 0.0
            for (j in 0 until joints) sum += group.value[j].toDouble()
            val score = (sum / joints).toFloat()

            val keypoints = Array(joints) { j ->
                if (group.value[j] > 0f) adjusted(group.cellX[j], group.cellY[j], group.value[j], j * plane, h2, w2)
                else UNDETECTED
            }
            if (params.refine && group.tagCount > 0) {
                refine(group, keypoints, h2, w2) { j -> peaks[j].refine }
            }
            people.add(Person(keypoints.asList(), score))
        }
        return people
    }

    /** det[j][y, x] = 0.5f * (up2(heatmaps_s4) + heatmaps_s2), planar per joint, inputs sanitised. */
    private fun aggregate(hm4: FloatArray, hm2: FloatArray, h4: Int, w4: Int, joints: Int) {
        val h2 = 2 * h4
        val w2 = 2 * w4
        val plane = h2 * w2
        val plane4 = h4 * w4
        if (det.size < joints * plane) det = FloatArray(joints * plane)
        if (rowScratch.size < h4 * w2) rowScratch = FloatArray(h4 * w2)
        if (planar4.size < joints * plane4) planar4 = FloatArray(joints * plane4)
        // Sanitise heatmaps_s4 into planar (per-joint contiguous) order: one sequential read.
        val src = planar4
        for (p in 0 until plane4) {
            val at = p * joints
            for (j in 0 until joints) src[j * plane4 + p] = finite(hm4[at + j])
        }
        val rows = rowScratch
        for (j in 0 until joints) {
            val plane4Base = j * plane4
            // Pass 1: along x for every input row (the blend rule, two outputs per input cell).
            for (iy in 0 until h4) {
                val rowIn = plane4Base + iy * w4
                val rowOut = iy * w2
                rows[rowOut] = src[rowIn] // o = 0: v[0]
                for (ix in 1 until w4) rows[rowOut + 2 * ix] = 0.25f * src[rowIn + ix - 1] + 0.75f * src[rowIn + ix]
                for (ix in 0 until w4 - 1) rows[rowOut + 2 * ix + 1] = 0.75f * src[rowIn + ix] + 0.25f * src[rowIn + ix + 1]
                rows[rowOut + w2 - 1] = 0.75f * src[rowIn + w4 - 1] + 0.25f * src[rowIn + w4 - 1]
            }
            // Pass 2: along y on those rows -> up(heatmaps_s4) in det, whole rows at a time.
            val out = j * plane
            System.arraycopy(rows, 0, det, out, w2) // oy = 0: row 0
            for (oy in 1 until h2) {
                val iy = oy shr 1
                val rowOut = out + oy * w2
                val cur = iy * w2
                if ((oy and 1) == 0) {
                    val prev = (iy - 1) * w2
                    for (x in 0 until w2) det[rowOut + x] = 0.25f * rows[prev + x] + 0.75f * rows[cur + x]
                } else {
                    val next = min(iy + 1, h4 - 1) * w2
                    for (x in 0 until w2) det[rowOut + x] = 0.75f * rows[cur + x] + 0.25f * rows[next + x]
                }
            }
        }
        // Average with heatmaps_s2 (read sequentially in its NHWC order).
        for (p in 0 until plane) {
            val at = p * joints
            for (j in 0 until joints) {
                val k = j * plane + p
                det[k] = 0.5f * (det[k] + finite(hm2[at + j]))
            }
        }
    }

    /**
     * The NMS peaks of joint j with det > 0, by value descending then flat index ascending (step 4
     * order), cut to top_k: refine's list. The matching candidates are its prefix with
     * `det > detection_threshold` (compared in float64, as python_ref). Each peak carries the upsampled
     * tag at its cell.
     */
    private fun jointPeaks(j: Int, h2: Int, w2: Int, tags: FloatArray, h4: Int, w4: Int, joints: Int): JointPeaks {
        val plane = h2 * w2
        val base = j * plane
        val pooled = maxPool(base, h2, w2)
        var keys = LongArray(64)
        var count = 0
        for (p in 0 until plane) {
            val value = det[base + p]
            if (value > 0f && value == pooled[p]) {
                if (count == keys.size) keys = keys.copyOf(count * 2)
                keys[count++] = sortKey(value, p)
            }
        }
        keys.sort(0, count)
        val refine = List(min(count, params.topK)) { k ->
            val p = (keys[k] and 0x7fffffffL).toInt()
            val x = p % w2
            val y = p / w2
            Peak(x, y, det[base + p], upsampledAt(tags, h4, w4, joints, j, x, y))
        }
        var n = 0
        while (n < refine.size && refine[n].value.toDouble() > params.detectionThreshold) n++
        return JointPeaks(refine.subList(0, n), refine)
    }

    /** nms_kernel × nms_kernel max-pool of one det plane (stride 1, -inf padding); separable, so exact. */
    private fun maxPool(base: Int, h2: Int, w2: Int): FloatArray {
        val plane = h2 * w2
        if (poolScratch.size < plane) poolScratch = FloatArray(plane)
        if (pooledScratch.size < plane) pooledScratch = FloatArray(plane)
        val pad = params.nmsKernel / 2
        val d = det
        val horizontal = poolScratch
        val pooled = pooledScratch
        // Separable max of finite values as shifted-row maxima (simple loops the JIT vectorises; a
        // per-cell window loop with branches was 3x slower on noisy maps).
        for (y in 0 until h2) {
            val row = base + y * w2
            val out = y * w2
            System.arraycopy(d, row, horizontal, out, w2)
            for (shift in 1..pad) {
                if (shift >= w2) break
                for (x in 0 until w2 - shift) horizontal[out + x] = Math.max(horizontal[out + x], d[row + x + shift])
                for (x in shift until w2) horizontal[out + x] = Math.max(horizontal[out + x], d[row + x - shift])
            }
        }
        for (y in 0 until h2) {
            val lo = if (y - pad < 0) 0 else y - pad
            val hi = if (y + pad > h2 - 1) h2 - 1 else y + pad
            val out = y * w2
            System.arraycopy(horizontal, lo * w2, pooled, out, w2)
            for (yy in lo + 1..hi) {
                val src = yy * w2
                for (x in 0 until w2) pooled[out + x] = Math.max(pooled[out + x], horizontal[src + x])
            }
        }
        return pooled
    }

    /** Step 5: greedy joint-by-joint grouping with a min-cost assignment per joint. */
    private fun matchByTag(candidates: Array<List<Peak>>, joints: Int): List<Group> {
        val groups = ArrayList<Group>()
        for (j in FastDecoder.visitingOrder(joints)) {   // the spec's order, pinned in FastDecoderTest
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
            if (best != null) keypoints[j] = adjusted(best.x, best.y, best.value, j * h2 * w2, h2, w2)
        }
    }

    /** Steps 6 and 8: position in model-input pixels, shifted a quarter cell towards the larger neighbour. */
    private fun adjusted(x: Int, y: Int, value: Float, base: Int, h2: Int, w2: Int): Keypoint {
        var dx = 0f
        var dy = 0f
        if (params.adjust) {
            dx = if (det[base + y * w2 + min(x + 1, w2 - 1)] > det[base + y * w2 + max(x - 1, 0)]) 0.25f else -0.25f
            dy = if (det[base + min(y + 1, h2 - 1) * w2 + x] > det[base + max(y - 1, 0) * w2 + x]) 0.25f else -0.25f
        }
        return Keypoint(2f * (x.toFloat() + 0.5f + dx), 2f * (y.toFloat() + 0.5f + dy), value)
    }

    companion object {
        private const val PADDING_COST = 1e10
        private val UNDETECTED = Keypoint(0f, 0f, 0f)
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

        /**
         * Sort key of a positive value: value descending, then flat index ascending, as one ascending
         * long (the bits of a positive float are ordered like the float).
         */
        private fun sortKey(value: Float, flatIndex: Int): Long =
            ((Int.MAX_VALUE - value.toRawBits()).toLong() shl 31) or flatIndex.toLong()
    }
}
