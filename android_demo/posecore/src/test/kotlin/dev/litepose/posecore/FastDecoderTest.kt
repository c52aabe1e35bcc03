package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import kotlin.random.Random

/** Hand-built model outputs: heatmaps_s2 spikes set det directly (heatmaps_s4 = 0 -> det = s2 / 2). */
private class Outputs(val h4: Int, val w4: Int, val joints: Int) {
    val h2 = 2 * h4
    val w2 = 2 * w4
    val hm4 = FloatArray(h4 * w4 * joints)
    val tags = FloatArray(h4 * w4 * joints)
    val hm2 = FloatArray(h2 * w2 * joints)

    /** det[y, x, j] = value (exact: 0.5f * (0 + 2v) == v). */
    fun det(j: Int, x: Int, y: Int, value: Float) {
        hm2[(y * w2 + x) * joints + j] = 2f * value
    }

    /** Tag map of joint j constant (upsampling a constant is exact for these values). */
    fun tag(j: Int, value: Float) {
        for (p in 0 until h4 * w4) tags[p * joints + j] = value
    }

    /** tags_s4 cell (x4, y4) of joint j. */
    fun tag4(j: Int, x4: Int, y4: Int, value: Float) {
        tags[(y4 * w4 + x4) * joints + j] = value
    }

    fun decode(params: DecoderParams = DecoderParams()) = FastDecoder(params).decode(hm4, tags, hm2, h4, w4, joints)
}

class FastDecoderTest {
    private fun assertKeypoint(expected: Keypoint, actual: Keypoint, what: String) {
        assertEquals(expected.x, actual.x, 0f, "$what x")
        assertEquals(expected.y, actual.y, 0f, "$what y")
        assertEquals(expected.score, actual.score, 0f, "$what score")
    }

    @Test
    fun `x2 upsampling follows the half-pixel rule, hand-computed`() {
        // 2x2 input [[0, 4], [8, 12]] -> rows along x: [0,1,3,4], [8,9,11,12]; then along y.
        val src = floatArrayOf(0f, 4f, 8f, 12f)
        val expected = arrayOf(
            floatArrayOf(0f, 1f, 3f, 4f),
            floatArrayOf(2f, 3f, 5f, 6f),
            floatArrayOf(6f, 7f, 9f, 10f),
            floatArrayOf(8f, 9f, 11f, 12f),
        )
        for (oy in 0 until 4) for (ox in 0 until 4) {
            assertEquals(expected[oy][ox], FastDecoder.upsampledAt(src, 2, 2, 1, 0, ox, oy), "($ox, $oy)")
        }
    }

    @Test
    fun `one person - adjust, score before refine, refine from a weak peak`() {
        val o = Outputs(4, 4, 3)
        for (j in 0 until 3) o.tag(j, 1f)
        o.det(0, 2, 3, 0.8f); o.det(0, 3, 3, 0.4f); o.det(0, 2, 2, 0.2f) // right > left: +x; up > down: -y
        o.det(1, 5, 5, 0.6f) // no neighbours: ties -> -0.25, -0.25
        o.det(2, 1, 6, 0.05f) // below the detection threshold: only refine sees it
        val people = o.decode()
        assertEquals(1, people.size)
        val p = people[0]
        assertKeypoint(Keypoint(2 * (2 + 0.5f + 0.25f), 2 * (3 + 0.5f - 0.25f), 0.8f), p.keypoints[0], "joint 0")
        assertKeypoint(Keypoint(2 * 5.25f, 2 * 5.25f, 0.6f), p.keypoints[1], "joint 1")
        assertKeypoint(Keypoint(2 * 1.25f, 2 * 6.25f, 0.05f), p.keypoints[2], "refined joint 2")
        assertEquals(((0.8f.toDouble() + 0.6f.toDouble()) / 3).toFloat(), p.score, "score excludes the refined joint")
    }

    @Test
    fun `adjust and refine can be switched off`() {
        val o = Outputs(4, 4, 2)
        o.det(0, 2, 3, 0.8f); o.det(0, 3, 3, 0.4f)
        o.det(1, 6, 1, 0.05f)
        val p = o.decode(DecoderParams(adjust = false, refine = false)).single()
        assertKeypoint(Keypoint(5f, 7f, 0.8f), p.keypoints[0], "joint 0 at the cell centre")
        assertKeypoint(Keypoint(0f, 0f, 0f), p.keypoints[1], "joint 1 stays undetected")
    }

    @Test
    fun `two people are separated by their tags`() {
        val o = Outputs(4, 4, 2)
        // Tags: s4 columns 0-1 -> 1.0, columns 2-3 -> 5.0; half-res columns 0..2 read 1.0, 5..7 read 5.0.
        for (j in 0 until 2) for (y in 0 until 4) for (x in 0 until 4) o.tag4(j, x, y, if (x < 2) 1f else 5f)
        o.det(0, 1, 1, 0.9f) // A, left
        o.det(0, 6, 6, 0.7f) // B, right
        o.det(1, 6, 2, 0.8f) // C, right
        o.det(1, 1, 5, 0.6f) // D, left
        val people = o.decode()
        assertEquals(2, people.size)
        assertKeypoint(Keypoint(2.5f, 2.5f, 0.9f), people[0].keypoints[0], "A")
        assertKeypoint(Keypoint(2.5f, 10.5f, 0.6f), people[0].keypoints[1], "D joins A")
        assertKeypoint(Keypoint(12.5f, 12.5f, 0.7f), people[1].keypoints[0], "B")
        assertKeypoint(Keypoint(12.5f, 4.5f, 0.8f), people[1].keypoints[1], "C joins B")
    }

    @Test
    fun `tag threshold is strict`() {
        fun people(tag1: Float): Int {
            val o = Outputs(4, 4, 2)
            o.tag(0, 1f); o.tag(1, tag1)
            o.det(0, 1, 1, 0.9f); o.det(1, 5, 5, 0.9f)
            return o.decode(DecoderParams(refine = false)).size
        }
        assertEquals(2, people(2f), "distance exactly 1.0 starts a new person")
        assertEquals(1, people(1.9375f), "distance 0.9375 joins")
    }

    @Test
    fun `detection threshold is strict and compared in float64`() {
        val o = Outputs(4, 4, 1)
        o.det(0, 1, 1, 0.5f)
        assertEquals(0, o.decode(DecoderParams(detectionThreshold = 0.5)).size, "0.5 is not > 0.5")
        o.det(0, 1, 1, Math.nextUp(0.5f))
        assertEquals(1, o.decode(DecoderParams(detectionThreshold = 0.5)).size)
        // 0.1f = 0.100000001490116 > 0.1 (float64), as in python_ref; the float below 0.1f is < 0.1.
        o.det(0, 1, 1, 0.1f)
        assertEquals(1, o.decode().size, "0.1f passes the default 0.1")
        o.det(0, 1, 1, Math.nextDown(0.1f))
        assertEquals(0, o.decode().size)
    }

    @Test
    fun `a plateau keeps every pixel, ties by flat index`() {
        val o = Outputs(4, 4, 1)
        o.det(0, 3, 2, 0.5f); o.det(0, 4, 2, 0.5f)
        val both = o.decode()
        assertEquals(2, both.size, "J=1: every candidate starts a person")
        assertKeypoint(Keypoint(2 * 3.75f, 2 * 2.25f, 0.5f), both[0].keypoints[0], "lower flat index first")
        assertKeypoint(Keypoint(2 * 4.25f, 2 * 2.25f, 0.5f), both[1].keypoints[0], "then the other")
        val one = o.decode(DecoderParams(topK = 1)).single()
        assertEquals(7.5f, one.keypoints[0].x)
    }

    @Test
    fun `nms window - peaks two cells apart survive a 3x3 pool but not the default 5x5`() {
        val o = Outputs(4, 4, 1)
        o.det(0, 2, 2, 0.9f); o.det(0, 4, 2, 0.5f) // two cells apart on a row
        o.det(0, 0, 7, 0.3f) // border cell: the window is cut, not wrapped
        assertEquals(listOf(0.9f, 0.3f), o.decode().map { it.keypoints[0].score })
        assertEquals(listOf(0.9f, 0.5f, 0.3f), o.decode(DecoderParams(nmsKernel = 3)).map { it.keypoints[0].score })
    }

    @Test
    fun `only the first maxNumPeople persons take part in matching`() {
        val o = Outputs(4, 12, 2)
        // s4 columns 4k..4k+3 carry tag 1 + 4k -> half-res column 8k+3 reads exactly that tag.
        for (j in 0 until 2) for (y in 0 until 4) for (x in 0 until 12) o.tag4(j, x, y, 1f + 4 * (x / 4))
        o.det(0, 3, 1, 0.9f); o.det(0, 11, 1, 0.8f); o.det(0, 19, 1, 0.7f)
        o.det(1, 19, 5, 0.9f) // tag 9: belongs to the third person
        val all = o.decode(DecoderParams(refine = false))
        assertEquals(3, all.size)
        assertEquals(0.9f, all[2].keypoints[1].score)
        val limited = o.decode(DecoderParams(refine = false, maxNumPeople = 2))
        assertEquals(4, limited.size, "the third person is not active, the candidate starts a fourth")
        assertEquals(0f, limited[2].keypoints[1].score)
        assertEquals(0.9f, limited[3].keypoints[1].score)
    }

    @Test
    fun `refine picks the peak nearest the mean tag, ties to the stronger peak`() {
        val o = Outputs(4, 12, 2)
        for (j in 0 until 2) for (y in 0 until 4) for (x in 0 until 12) o.tag4(j, x, y, 1f + 4 * (x / 4))
        o.det(0, 3, 1, 0.9f) // person with tag 1
        o.det(1, 11, 5, 0.09f) // tag 5: det - round(4) = -3.91
        o.det(1, 3, 6, 0.02f) // tag 1: det - 0 = 0.02, flat index 6*24+3
        o.det(1, 5, 2, 0.02f) // tag 1: the same 0.02, flat index 2*24+5: earlier in step-4 order -> wins
        val p = o.decode().single()
        assertKeypoint(Keypoint(2 * 5.25f, 2 * 2.25f, 0.02f), p.keypoints[1], "equal scores: earlier in step-4 order")
    }

    @Test
    fun `no peaks gives no people`() {
        assertEquals(0, Outputs(8, 8, 14).decode().size)
        assertEquals(0, FastDecoder().decode(FloatArray(0), FloatArray(0), FloatArray(0), 0, 5, 14).size, "zero height")
    }

    @Test
    fun `defaults are the spec table`() {
        assertEquals(DecoderParams(0.1, 1.0, 30, 30, 5, adjust = true, refine = true), DecoderParams())
    }

    @Test
    fun `huge values are clamped to 1e6`() {
        val o = Outputs(4, 4, 2)
        o.tag(0, 1f); o.tag(1, 1f)
        o.det(0, 6, 6, 0.9f)
        o.det(1, 5, 5, 0.9f)
        val clamped = Outputs(4, 4, 2)
        o.tags.copyInto(clamped.tags); o.hm2.copyInto(clamped.hm2)
        // A garbage tag of 1e30 on joint 1's cell: clamped to 1e6 it is still far -> a second person, no overflow.
        o.tags[(2 * 4 + 2) * 2 + 1] = 1e30f
        clamped.tags[(2 * 4 + 2) * 2 + 1] = 1e6f
        o.hm2[(0 * 8 + 0) * 2 + 0] = 3e38f
        clamped.hm2[(0 * 8 + 0) * 2 + 0] = 1e6f
        val people = o.decode()
        assertEquals(clamped.decode(), people)
        assertEquals(3, people.size, "the clamped 5e5 peak of joint 0, then the 0.9 one, then joint 1 alone")
        assertEquals(5e5f, people[0].keypoints[0].score)
    }

    @Test
    fun `NaN and infinities decode as zeros`() {
        val rnd = Random(7)
        val o = Outputs(8, 10, 14)
        for (k in o.hm4.indices) { o.hm4[k] = rnd.nextFloat(); o.tags[k] = rnd.nextFloat() * 4 }
        for (k in o.hm2.indices) o.hm2[k] = rnd.nextFloat()
        val dirty = Outputs(8, 10, 14)
        o.hm4.copyInto(dirty.hm4); o.tags.copyInto(dirty.tags); o.hm2.copyInto(dirty.hm2)
        val poison = floatArrayOf(Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY)
        for (n in 0 until 200) {
            val arr = listOf(dirty.hm4 to o.hm4, dirty.tags to o.tags, dirty.hm2 to o.hm2)[n % 3]
            val k = rnd.nextInt(arr.first.size)
            arr.first[k] = poison[n % 3]
            arr.second[k] = 0f
        }
        assertEquals(o.decode(), dirty.decode())
        val allNaN = Outputs(4, 4, 14)
        allNaN.hm4.fill(Float.NaN); allNaN.tags.fill(Float.NaN); allNaN.hm2.fill(Float.NaN)
        assertEquals(0, allNaN.decode().size)
    }

    @Test
    fun `hundreds of peaks - bounded output, coordinates inside the input`() {
        val rnd = Random(11)
        val o = Outputs(56, 80, 17)
        for (k in o.hm4.indices) { o.hm4[k] = rnd.nextFloat(); o.tags[k] = rnd.nextFloat() * 50 }
        for (k in o.hm2.indices) o.hm2[k] = rnd.nextFloat()
        val people = o.decode()
        assertTrue(people.size > 30, "noise should give many people, got ${people.size}")
        assertTrue(people.size <= 17 * 30, "at most J * top_k people, got ${people.size}")
        for (p in people) {
            assertEquals(17, p.keypoints.size)
            for (k in p.keypoints) if (k.detected) {
                assertTrue(k.x in 0f..320f && k.y in 0f..224f, "$k outside the 320x224 input")
            }
        }
    }

    @Test
    fun `shape errors are reported`() {
        val d = FastDecoder()
        assertThrows<IllegalArgumentException> { d.decode(FloatArray(10), FloatArray(16), FloatArray(64), 2, 2, 4) }
        assertThrows<IllegalArgumentException> { d.decode(FloatArray(16), FloatArray(16), FloatArray(60), 2, 2, 4) }
        assertThrows<IllegalArgumentException> { DecoderParams(nmsKernel = 4) }
    }

    @Test
    fun `joint visiting order is the official one`() {
        assertEquals(listOf(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13), FastDecoder.visitingOrder(14).toList())
        assertEquals(listOf(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16), FastDecoder.visitingOrder(17).toList())
        assertEquals(listOf(0, 1, 2), FastDecoder.visitingOrder(3).toList())
        // 15 / 16 joints: the official code walks the COCO order's first J entries; 10 would fail there.
        assertEquals(listOf(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14), FastDecoder.visitingOrder(15).toList())
        assertEquals(listOf(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15), FastDecoder.visitingOrder(16).toList())
        assertEquals((0 until 10).toList(), FastDecoder.visitingOrder(10).toList())
        assertEquals((0 until 20).toList(), FastDecoder.visitingOrder(20).toList())
    }
}
