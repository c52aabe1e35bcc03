package dev.litepose.posecore

import kotlin.math.abs
import kotlin.math.max
import kotlin.math.min

/**
 * Steps 1-4 of docs/fast-decoder.md, the per-pixel part of [FastDecoder]: sanitise, upsample ×2,
 * aggregate into det, nms_kernel × nms_kernel max-pool, peak test, top-k per joint.
 *
 * One streaming pass over the rows of the half-resolution maps in the inputs' own NHWC order (joint
 * fastest): aggregate row r, take its horizontal window max into a ring of rows, and once rows
 * r - pad .. r + pad exist, finish row r - pad (vertical max, peak test, top-k). Why this shape:
 * in micro-benchmarks here, HotSpot's C2 (JDK 17) vectorised a loop only when every array in it was
 * indexed by the loop variable itself; `a[off + i]` or two offsets into one array kept it scalar
 * (5-20× slower). So every hot loop here works on whole rows held in their own arrays, and neighbours along
 * x (±J, ±2J values away) are brought to index i by System.arraycopy into shifted rows.
 *
 * Exactness: each det value is computed with the spec's float32 operations in the spec's order (x
 * pass, y pass, average); max is exact and order-free. Sanitising (non-finite -> 0, clamp ±1e6) is
 * the identity on clean inputs, so the pass runs on the raw inputs while accumulating the largest
 * |value| per column; if anything needed sanitising it runs again on sanitised copies.
 *
 * Scratch buffers are reused between calls (one instance per thread).
 */
internal class PeakDetector(nmsKernel: Int, private val topK: Int) {
    private val pad = nmsKernel / 2
    private val ringRows = 2 * pad + 1

    private var h2 = 0
    private var w2 = 0
    private var w4 = 0
    private var joints = 0
    private var rowLen = 0 // w2 * joints

    /** det row y, `[w2 * J]` NHWC: det(x, y, j) = detRows[y][x * J + j]. */
    private var detRows = emptyArray<FloatArray>()
    private var hm2Row = FloatArray(0) // the current heatmaps_s2 row, copied to index 0
    private var hm4Row = FloatArray(0) // the current heatmaps_s4 row, copied to index 0
    private var hm4Next = FloatArray(0) // the same row moved one column left (last column: itself)
    private var oddX = FloatArray(0) // 0.75f * column + 0.25f * next column
    private var evenX = FloatArray(0) // 0.25f * column + 0.75f * next column
    private var upX = emptyArray<FloatArray>() // heatmaps_s4 rows upsampled along x; slot = input row parity
    private var absMax2 = FloatArray(0) // running max of |heatmaps_s2| per row position (NaN sticks)
    private var absMax4 = FloatArray(0) // running max of |heatmaps_s4| per row position
    private var shifted = emptyArray<FloatArray>() // det row moved by ±s cells along x (edge: the cell itself)
    private var fold = emptyArray<FloatArray>() // 3 quarters of the gap row, their min with the first quarter
    private var fold2 = emptyArray<FloatArray>() // the same, one level down (quarters of that min)
    private var ring = emptyArray<FloatArray>() // horizontal window max of the last 2*pad+1 rows (slot = row % that)
    private var pooled = FloatArray(0) // full window max minus det of the row being finished
    private var floor = FloatArray(0) // per row position: the least det that can still enter its joint's top-k
    private var floorStale = true
    private var jointOf = IntArray(0) // row position -> joint
    private var cellOf = IntArray(0) // row position -> x
    private var clean4 = FloatArray(0) // sanitised copies, only for inputs that need sanitising
    private var clean2 = FloatArray(0)

    private var topKeys = LongArray(0) // [J][topK] ascending sort keys of each joint's best peaks
    private var topCount = IntArray(0)

    /** det[y, x, j] of the last [run]. */
    fun det(x: Int, y: Int, j: Int): Float = detRows[y][x * joints + j]

    /** Number of peaks of joint j kept (<= top_k). */
    fun peakCount(j: Int): Int = topCount[j]

    /** Flat index y * w2 + x of the k-th peak of joint j (value descending, flat index ascending). */
    fun peakIndex(j: Int, k: Int): Int = (topKeys[j * topK + k] and 0x7fffffffL).toInt()

    /** Runs steps 1-4 on `[h4, w4, J]` heatmaps_s4 and `[2h4, 2w4, J]` heatmaps_s2 (NHWC, h4, w4, J >= 1). */
    fun run(hm4: FloatArray, hm2: FloatArray, h4: Int, w4: Int, joints: Int) {
        reshape(h4, w4, joints)
        if (!pass(hm4, hm2, h4)) {
            // Some value was non-finite or beyond ±1e6: decode sanitised copies instead (the same
            // result the clean pass gives whenever sanitising changes nothing).
            if (clean4.size < hm4.size) clean4 = FloatArray(hm4.size)
            if (clean2.size < hm2.size) clean2 = FloatArray(hm2.size)
            for (i in hm4.indices) clean4[i] = sanitise(hm4[i])
            for (i in hm2.indices) clean2[i] = sanitise(hm2[i])
            pass(clean4, clean2, h4)
        }
    }

    private fun reshape(h4: Int, w4: Int, joints: Int) {
        val h2 = 2 * h4
        val rowLen = 2 * w4 * joints
        if (h2 != this.h2 || rowLen != this.rowLen || joints != this.joints) {
            this.h2 = h2
            this.w2 = 2 * w4
            this.w4 = w4
            this.joints = joints
            this.rowLen = rowLen
            detRows = Array(h2) { FloatArray(rowLen) }
            hm2Row = FloatArray(rowLen)
            hm4Row = FloatArray(w4 * joints)
            hm4Next = FloatArray(w4 * joints)
            oddX = FloatArray(w4 * joints)
            evenX = FloatArray(w4 * joints)
            upX = Array(2) { FloatArray(rowLen) }
            absMax2 = FloatArray(rowLen)
            absMax4 = FloatArray(w4 * joints)
            shifted = Array(4) { FloatArray(rowLen) }
            fold = Array(4) { FloatArray(rowLen / 4) }
            fold2 = Array(4) { FloatArray(rowLen / 16) }
            ring = Array(ringRows) { FloatArray(rowLen) }
            pooled = FloatArray(rowLen)
            floor = FloatArray(rowLen)
            jointOf = IntArray(rowLen) { it % joints }
            cellOf = IntArray(rowLen) { it / joints }
            topKeys = LongArray(joints * topK)
            topCount = IntArray(joints)
        }
    }

    /** One streaming pass; returns false if an input value needed sanitising (then the result is void). */
    private fun pass(hm4: FloatArray, hm2: FloatArray, h4: Int): Boolean {
        absMax2.fill(0f)
        absMax4.fill(0f)
        topCount.fill(0)
        floorStale = true
        var upRowsReady = -1 // input rows 0..upRowsReady have been upsampled along x (the last two are kept)
        for (r in 0 until h2) {
            val iy = r shr 1
            val lastNeeded = if ((r and 1) == 0) iy else min(iy + 1, h4 - 1)
            while (upRowsReady < lastNeeded) {
                upRowsReady++
                upsampleRowX(hm4, upRowsReady)
            }
            aggregateRow(hm2, r, h4)
            horizontalMax(detRows[r], ring[r % ringRows])
            if (r >= pad) finishRow(r - pad)
        }
        for (y in max(0, h2 - pad) until h2) finishRow(y)
        return maxOf(absMax2) <= LIMIT && maxOf(absMax4) <= LIMIT
    }

    /**
     * Step 1, pass along x of input row iy into upX[iy & 1] (J values per cell): output column 0
     * copies input column 0; input columns ix (a) and ix+1 (b) give the odd output 2ix+1 =
     * 0.75f*a + 0.25f*b and the even output 2ix+2 = 0.25f*a + 0.75f*b; the last output column is
     * 0.75f*v + 0.25f*v of the last input column (b = a).
     */
    private fun upsampleRowX(hm4: FloatArray, iy: Int) {
        val joints = joints
        val len = w4 * joints
        val src = hm4Row
        System.arraycopy(hm4, iy * len, src, 0, len)
        val seen = absMax4
        for (i in 0 until len) seen[i] = max(seen[i], abs(src[i]))
        // Both blends for every input column ix, with its right neighbour (the last column: itself),
        // vectorised at index i; then interleaved: out column 2ix+1 = odd(ix), 2ix+2 = even(ix).
        val next = hm4Next
        val odd = oddX
        val even = evenX
        System.arraycopy(src, joints, next, 0, len - joints)
        System.arraycopy(src, len - joints, next, len - joints, joints)
        for (i in 0 until len) odd[i] = 0.75f * src[i] + 0.25f * next[i]
        for (i in 0 until len) even[i] = 0.25f * src[i] + 0.75f * next[i]
        val out = upX[iy and 1]
        for (j in 0 until joints) out[j] = src[j] // column 0: copied
        for (ix in 0 until w4 - 1) {
            val at = ix * joints
            val o = (2 * ix + 1) * joints
            for (j in 0 until joints) out[o + j] = odd[at + j]
            for (j in 0 until joints) out[o + joints + j] = even[at + j]
        }
        val at = (w4 - 1) * joints
        for (j in 0 until joints) out[at + at + joints + j] = odd[at + j] // column 2*w4 - 1
    }

    /** Steps 1 (pass along y) and 2 for output row r: det = 0.5f * (up(heatmaps_s4) + heatmaps_s2). */
    private fun aggregateRow(hm2: FloatArray, r: Int, h4: Int) {
        val len = rowLen
        val h = hm2Row
        System.arraycopy(hm2, r * len, h, 0, len)
        val seen = absMax2
        for (i in 0 until len) seen[i] = max(seen[i], abs(h[i]))
        val d = detRows[r]
        val iy = r shr 1
        if (r == 0) {
            val u = upX[0] // row 0 of the x pass, copied
            for (i in 0 until len) d[i] = 0.5f * (u[i] + h[i])
        } else if ((r and 1) == 0) {
            val prev = upX[(iy - 1) and 1]
            val cur = upX[iy and 1]
            for (i in 0 until len) d[i] = 0.5f * ((0.25f * prev[i] + 0.75f * cur[i]) + h[i])
        } else {
            val cur = upX[iy and 1]
            val next = upX[min(iy + 1, h4 - 1) and 1]
            for (i in 0 until len) d[i] = 0.5f * ((0.75f * cur[i] + 0.25f * next[i]) + h[i])
        }
    }

    /** Row `src` moved so that out[i] = src[i + s*J] (s may be negative); cells pushed off the edge keep src[i]. */
    private fun shift(src: FloatArray, out: FloatArray, s: Int) {
        val len = rowLen
        val off = abs(s) * joints
        if (s > 0) {
            System.arraycopy(src, off, out, 0, len - off)
            System.arraycopy(src, len - off, out, len - off, off)
        } else {
            System.arraycopy(src, 0, out, off, len - off)
            System.arraycopy(src, 0, out, 0, off)
        }
    }

    /**
     * Max of det over x - pad .. x + pad (clipped) for every x and joint. A neighbour that falls off
     * the edge is replaced by the cell itself, which is in the window anyway, so the max is unchanged.
     */
    private fun horizontalMax(d: FloatArray, out: FloatArray) {
        val len = rowLen
        val reach = min(pad, w2 - 1) // shifts of w2 or more cells only see the cell itself
        if (reach == 2) {
            val (l1, r1, l2, r2) = shifted
            shift(d, l1, -1)
            shift(d, r1, 1)
            shift(d, l2, -2)
            shift(d, r2, 2)
            for (i in 0 until len) out[i] = max(max(max(l2[i], l1[i]), max(r1[i], r2[i])), d[i])
            return
        }
        System.arraycopy(d, 0, out, 0, len)
        val s = shifted[0]
        for (k in 1..reach) {
            shift(d, s, -k)
            for (i in 0 until len) out[i] = max(out[i], s[i])
            shift(d, s, k)
            for (i in 0 until len) out[i] = max(out[i], s[i])
        }
    }

    /**
     * Steps 3-4 for row y: the vertical max of the ring rows y - pad .. y + pad (clipped) is the full
     * window max; a cell is a peak iff det == max, and it is kept iff det > 0 and it ranks among the
     * top_k of its joint so far (value descending, flat index ascending).
     *
     * The test runs on gap = max(max - det, floor - det), which is exactly 0 at peaks with det >= floor
     * and > 0 elsewhere (finite floats: x - y == 0 iff x == y, x - y > 0 iff x > y). floor[i] is the
     * smallest positive float while the joint's top-k is not full, then its worst value: a lower det
     * can neither be > 0 nor enter, so skipping it changes nothing. Most cells are not offered, so the
     * row is folded (below) and only the columns whose min is 0 are searched cell by cell.
     */
    private fun finishRow(y: Int) {
        val len = rowLen
        val lo = max(0, y - pad)
        val hi = min(h2 - 1, y + pad)
        val d = detRows[y]
        val gap = pooled
        if (floorStale) updateFloor()
        val f = floor
        if (hi - lo == 4) {
            val r0 = ring[lo % ringRows]
            val r1 = ring[(lo + 1) % ringRows]
            val r2 = ring[(lo + 2) % ringRows]
            val r3 = ring[(lo + 3) % ringRows]
            val r4 = ring[(lo + 4) % ringRows]
            for (i in 0 until len) gap[i] = max(max(max(r0[i], r1[i]), max(r2[i], r3[i])), r4[i]) - d[i]
        } else {
            System.arraycopy(ring[lo % ringRows], 0, gap, 0, len)
            for (yy in lo + 1..hi) {
                val m = ring[yy % ringRows]
                for (i in 0 until len) gap[i] = max(gap[i], m[i])
            }
            for (i in 0 until len) gap[i] = gap[i] - d[i]
        }
        for (i in 0 until len) gap[i] = max(gap[i], f[i] - d[i])
        // Fold the row twice into quarters (min is exact): a zero in the 16-fold row marks the
        // columns worth a look. Everything stays at index i (vectorised); the search is scalar.
        val q = len shr 2
        val qq = q shr 2
        val (a1, a2, a3, once) = fold
        val (b1, b2, b3, twice) = fold2
        System.arraycopy(gap, q, a1, 0, q)
        System.arraycopy(gap, 2 * q, a2, 0, q)
        System.arraycopy(gap, 3 * q, a3, 0, q)
        for (i in 0 until q) once[i] = min(min(gap[i], a1[i]), min(a2[i], a3[i]))
        System.arraycopy(once, qq, b1, 0, qq)
        System.arraycopy(once, 2 * qq, b2, 0, qq)
        System.arraycopy(once, 3 * qq, b3, 0, qq)
        for (i in 0 until qq) twice[i] = min(min(once[i], b1[i]), min(b2[i], b3[i]))
        val rowBase = y * w2
        for (k in 0 until qq) {
            if (twice[k] == 0f) {
                var kk = k
                while (kk < 4 * qq) {
                    if (once[kk] == 0f) searchColumn(kk, q, d, rowBase)
                    kk += qq
                }
            }
        }
        for (kk in 4 * qq until q) if (once[kk] == 0f) searchColumn(kk, q, d, rowBase)
        for (i in 4 * q until len) if (gap[i] == 0f) offerPeak(i, d[i], rowBase)
    }

    /** Offers the cells k, k + q, k + 2q, k + 3q of the gap row that are 0. */
    private fun searchColumn(k: Int, q: Int, d: FloatArray, rowBase: Int) {
        val gap = pooled
        var i = k
        while (i < 4 * q) {
            if (gap[i] == 0f) offerPeak(i, d[i], rowBase)
            i += q
        }
    }

    /** floor = each joint's entry value (smallest positive float until its top-k is full), J-periodic. */
    private fun updateFloor() {
        val joints = joints
        val f = floor
        for (j in 0 until joints) {
            val worstKey = topKeys[(j + 1) * topK - 1] // the value's bits are Int.MAX_VALUE - (key >>> 31)
            f[j] = if (topCount[j] < topK) Float.MIN_VALUE else Float.fromBits(Int.MAX_VALUE - (worstKey ushr 31).toInt())
        }
        var filled = joints
        while (filled < rowLen) {
            val n = min(filled, rowLen - filled)
            System.arraycopy(f, 0, f, filled, n)
            filled += n
        }
        floorStale = false
    }

    /** A peak at row position i: kept among the top_k smallest sort keys of its joint if det > 0. */
    private fun offerPeak(i: Int, value: Float, rowBase: Int) {
        if (!(value > 0f)) return
        val j = jointOf[i]
        val key = sortKey(value, rowBase + cellOf[i])
        val keys = topKeys
        val first = j * topK
        var n = topCount[j]
        if (n == topK) {
            if (key > keys[first + n - 1]) return
            n-- // the last one drops out
        } else {
            topCount[j] = n + 1
        }
        if (n == topK - 1) floorStale = true // the entry value rises (or the list just filled)
        var at = first + n
        while (at > first && keys[at - 1] > key) {
            keys[at] = keys[at - 1]
            at--
        }
        keys[at] = key
    }

    private companion object {
        const val LIMIT = 1e6f

        /** Largest element; NaN if any element is NaN (Math.max propagates it). */
        fun maxOf(a: FloatArray): Float {
            var m = Float.NEGATIVE_INFINITY
            for (v in a) m = max(m, v)
            return m
        }

        /** Sanitising: NaN/±inf -> 0, then clamp to [-1e6, 1e6] (real outputs stay within ±100). */
        fun sanitise(v: Float): Float = if (v.isFinite()) v.coerceIn(-LIMIT, LIMIT) else 0f

        /**
         * Sort key of a positive value: value descending, then flat index ascending, as one ascending
         * long (the bits of a positive float are ordered like the float).
         */
        fun sortKey(value: Float, flatIndex: Int): Long =
            ((Int.MAX_VALUE - value.toRawBits()).toLong() shl 31) or flatIndex.toLong()
    }
}
