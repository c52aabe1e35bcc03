package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.exp
import kotlin.random.Random

/**
 * The optimised [FastDecoder] against [ReferenceDecoder] (the plain implementation it replaced): the same
 * people, every keypoint and score equal bit for bit, on the golden cases and on random maps that stress
 * the parts the optimisation touched (odd small shapes, every NMS kernel, plateaus from quantised
 * values, NaN/inf/huge values in some rows, top-k cuts, one decoder instance reused across shapes).
 */
class FastDecoderEquivalenceTest {
    private val baseDir = File(System.getProperty("posecore.basedir") ?: ".")

    private fun assertSameBits(expected: List<Person>, actual: List<Person>, what: String) {
        assertEquals(expected.size, actual.size, "$what: number of people")
        for ((p, e) in expected.withIndex()) {
            val a = actual[p]
            assertEquals(e.score.toRawBits(), a.score.toRawBits(), "$what: person $p score ${e.score} vs ${a.score}")
            assertEquals(e.keypoints.size, a.keypoints.size, "$what: person $p joints")
            for ((j, k) in e.keypoints.withIndex()) {
                val b = a.keypoints[j]
                val same = k.x.toRawBits() == b.x.toRawBits() && k.y.toRawBits() == b.y.toRawBits() &&
                    k.score.toRawBits() == b.score.toRawBits()
                assertTrue(same, "$what: person $p joint $j: reference $k, fast $b")
            }
        }
    }

    @TestFactory
    fun `golden cases decode bit-identically`(): List<DynamicTest> {
        val configured = System.getProperty("litepose.golden")?.takeIf { it.isNotBlank() }
            ?: System.getenv("LITEPOSE_GOLDEN")?.takeIf { it.isNotBlank() }
        val dirs = listOfNotNull(
            File(baseDir, "src/test/resources/golden-synthetic"),
            if (configured != null) File(configured) else File(baseDir, "../../golden"),
        )
        val cases = dirs.flatMap { dir ->
            (dir.listFiles { f -> f.isFile && f.name.endsWith(".json") } ?: emptyArray()).sortedBy { it.name }
        }
        assertTrue(cases.size >= 5, "expected at least the committed synthetic golden cases")
        return cases.map { f -> DynamicTest.dynamicTest(f.nameWithoutExtension) { checkGolden(f) } }
    }

    private fun checkGolden(json: File) {
        val case = GoldenCase(json)
        val joints = case.joints
        val h4 = case.h4
        val w4 = case.w4
        val golden = case.params
        val arrays = case.arrays
        // The case's own parameters, plus other kernels and a short top-k on the same real maps.
        for (params in listOf(golden, golden.copy(nmsKernel = 3), golden.copy(nmsKernel = 7, topK = 5))) {
            val hm4 = arrays["heatmaps_s4"]!!
            val tags = arrays["tags_s4"]!!
            val hm2 = arrays["heatmaps_s2"]!!
            assertSameBits(
                ReferenceDecoder(params).decode(hm4, tags, hm2, h4, w4, joints),
                FastDecoder(params).decode(hm4, tags, hm2, h4, w4, joints),
                "${json.name} $params",
            )
        }
    }

    /** Random LitePose-like maps: Gaussian blobs over noise, optionally quantised and polluted. */
    private class RandomMaps(val h4: Int, val w4: Int, val joints: Int, rnd: Random, quantised: Boolean, dirty: Boolean) {
        val hm4 = FloatArray(h4 * w4 * joints)
        val tags = FloatArray(h4 * w4 * joints)
        val hm2 = FloatArray(4 * h4 * w4 * joints)

        init {
            val people = rnd.nextInt(0, 6)
            val personTag = FloatArray(people) { rnd.nextFloat() * 4f - 2f }
            fun fill(map: FloatArray, h: Int, w: Int, stride: Int) {
                for (i in map.indices) map[i] = (rnd.nextFloat() - 0.3f) * 0.05f
                for (p in 0 until people) for (j in 0 until joints) {
                    val cx = rnd.nextDouble() * w * stride
                    val cy = rnd.nextDouble() * h * stride
                    val peak = rnd.nextDouble(0.05, 1.0)
                    for (y in 0 until h) for (x in 0 until w) {
                        val dx = (x + 0.5) * stride - cx
                        val dy = (y + 0.5) * stride - cy
                        val g = (peak * exp(-(dx * dx + dy * dy) / (2 * 9.0 * stride * stride))).toFloat()
                        val idx = (y * w + x) * joints + j
                        if (g > map[idx]) map[idx] = g
                        if (map === hm4 && g > 0.01f) tags[idx] = personTag[p] + (rnd.nextFloat() - 0.5f) * 0.2f
                    }
                }
                if (quantised) { // int8-like: few distinct values, exact ties and plateaus everywhere
                    val scale = 0.0078125f * (1 + rnd.nextInt(3))
                    val zp = rnd.nextInt(-10, 10)
                    for (i in map.indices) {
                        val q = Math.round(map[i] / scale + zp).coerceIn(-128, 127)
                        map[i] = scale * (q - zp).toFloat()
                    }
                }
                if (dirty) {
                    val bad = floatArrayOf(Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 3e7f, -5e6f, 1e6f, -0f)
                    repeat(1 + rnd.nextInt(8)) { map[rnd.nextInt(map.size)] = bad[rnd.nextInt(bad.size)] }
                }
            }
            fill(hm4, h4, w4, 4)
            fill(hm2, 2 * h4, 2 * w4, 2)
            if (dirty) tags[rnd.nextInt(tags.size)] = Float.NaN
        }
    }

    @Test
    fun `random maps of every shape and parameter decode bit-identically`() {
        val rnd = Random(20240611)
        val shapes = listOf(1 to 1, 1 to 2, 2 to 1, 1 to 7, 3 to 2, 2 to 3, 5 to 4, 3 to 9, 8 to 8, 17 to 12, 28 to 20)
        val paramSets = listOf(
            DecoderParams(),
            DecoderParams(nmsKernel = 1),
            DecoderParams(nmsKernel = 3, topK = 4),
            DecoderParams(nmsKernel = 7, maxNumPeople = 2),
            DecoderParams(nmsKernel = 9, topK = 1),
            DecoderParams(adjust = false, refine = false, detectionThreshold = 0.0),
            DecoderParams(topK = 200, detectionThreshold = 0.02, tagThreshold = 0.3),
        )
        var cases = 0
        var people = 0
        for (params in paramSets) {
            val fast = FastDecoder(params) // one instance across all shapes: scratch reuse must not leak
            for (round in 0 until 3) for ((h4, w4) in shapes.shuffled(rnd)) {
                val joints = listOf(1, 2, 3, 14, 17)[rnd.nextInt(5)]
                val quantised = rnd.nextInt(3) == 0
                val dirty = rnd.nextInt(4) == 0
                val m = RandomMaps(h4, w4, joints, rnd, quantised, dirty)
                val expected = ReferenceDecoder(params).decode(m.hm4, m.tags, m.hm2, h4, w4, joints)
                val actual = fast.decode(m.hm4, m.tags, m.hm2, h4, w4, joints)
                assertSameBits(expected, actual, "$params h4=$h4 w4=$w4 J=$joints quantised=$quantised dirty=$dirty")
                cases++
                people += expected.size
            }
        }
        assertEquals(paramSets.size * 3 * shapes.size, cases)
        assertTrue(people > 500, "the random maps should produce people to compare, got $people")
    }

    @Test
    fun `changing params on one decoder gives what a freshly built decoder gives`() {
        val rnd = Random(7)
        val paramSets = listOf(
            DecoderParams(),
            DecoderParams(detectionThreshold = 0.3, tagThreshold = 0.5), // thresholds only: buffers kept
            DecoderParams(detectionThreshold = 0.02, tagThreshold = 2.0),
            DecoderParams(nmsKernel = 3, topK = 4), // a new peak detector
            DecoderParams(nmsKernel = 3, topK = 4, detectionThreshold = 0.05, adjust = false),
            DecoderParams(),
        )
        val reused = FastDecoder()
        var people = 0
        for (round in 0 until 4) for (params in paramSets) {
            val (h4, w4) = listOf(8 to 8, 17 to 12, 5 to 9)[rnd.nextInt(3)]
            val joints = listOf(1, 14, 17)[rnd.nextInt(3)]
            val m = RandomMaps(h4, w4, joints, rnd, quantised = rnd.nextBoolean(), dirty = false)
            reused.params = params
            val expected = FastDecoder(params).decode(m.hm4, m.tags, m.hm2, h4, w4, joints)
            assertSameBits(expected, reused.decode(m.hm4, m.tags, m.hm2, h4, w4, joints), "round $round $params")
            people += expected.size
        }
        assertTrue(people > 20, "the maps should produce people to compare, got $people")
    }
}
