package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.fail
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs

/**
 * The Kotlin decoder against python_ref `decode_fast` on golden vectors (GOLDEN_FORMAT.md):
 * the same people in the same order, joints within 0.01 px, scores within 1e-4.
 */
class GoldenVectorsTest {
    private val baseDir = File(System.getProperty("posecore.basedir") ?: ".")

    @TestFactory
    fun `committed synthetic cases`(): List<DynamicTest> {
        val dir = File(baseDir, "src/test/resources/golden-synthetic")
        val cases = caseFiles(dir)
        assertTrue(cases.size >= 5, "expected the committed synthetic cases in $dir, found ${cases.size}")
        return cases.map { f -> DynamicTest.dynamicTest(f.nameWithoutExtension) { checkCase(f) } }
    }

    @TestFactory
    fun `exported golden cases (litepose export-golden)`(): List<DynamicTest> {
        val configured = System.getProperty("litepose.golden")?.takeIf { it.isNotBlank() }
            ?: System.getenv("LITEPOSE_GOLDEN")?.takeIf { it.isNotBlank() }
        val dir = if (configured != null) File(configured) else File(baseDir, "../../golden")
        val cases = caseFiles(dir)
        if (cases.isEmpty()) {
            val msg = "no golden cases in ${dir.absoluteFile.normalize()} (set -Dlitepose.golden=DIR or LITEPOSE_GOLDEN; " +
                "generate them with `litepose export-golden --out DIR`)"
            // A dynamic test (not the factory) carries the skip, so surefire reports it with the message.
            return listOf(
                DynamicTest.dynamicTest("golden folder") {
                    if (!System.getenv("CI").isNullOrEmpty()) fail("$msg - CI must have them")
                    assumeTrue(false, msg)
                },
            )
        }
        return cases.map { f -> DynamicTest.dynamicTest(f.nameWithoutExtension) { checkCase(f) } }
    }

    private fun caseFiles(dir: File): List<File> =
        (dir.listFiles { f -> f.isFile && f.name.endsWith(".json") } ?: emptyArray()).sortedBy { it.name }

    private fun checkCase(json: File) {
        val case = GoldenCase(json)
        val doc = case.doc
        assertEquals("litepose-golden/1", doc["format"], "$json format")
        val joints = case.joints
        val h4 = case.h4
        val w4 = case.w4
        val arrays = case.arrays

        // Dequantisation parity: raw integers -> the exact float32 values python decoded.
        (doc["quantization"] as Map<*, *>?)?.forEach { (name, spec) ->
            val q = spec.obj()
            val raw = File(json.parentFile, q["file"] as String).readBytes()
            val real = Quantization(q["scale"].num().toFloat(), q["zero_point"].int()).dequantize(raw, q["dtype"] == "int8")
            val expected = arrays[name as String]!!
            assertArrayEquals(expected.map { it.toRawBits() }.toIntArray(), real.map { it.toRawBits() }.toIntArray(),
                "${json.name}: dequantised $name differs from python's float32")
        }

        val params = case.params
        val people = FastDecoder(params).decode(arrays["heatmaps_s4"]!!, arrays["tags_s4"]!!, arrays["heatmaps_s2"]!!, h4, w4, joints)
        val poses = doc["poses"].list()
        val scores = doc["scores"].list().map { it.num() }
        assertEquals(poses.size, people.size, "${json.name}: number of people (python vs kotlin)")
        for ((p, pose) in poses.withIndex()) {
            comparePerson(json.name, p, pose.list(), people[p].keypoints)
            assertClose(scores[p], people[p].score.toDouble(), 1e-4, "${json.name}: person $p score")
        }

        (doc["letterbox"] as Map<*, *>?)?.let { lbDoc ->
            val image = lbDoc["image_hw"].list().map { it.int() }
            val input = lbDoc["input_hw"].list().map { it.int() }
            val lb = Letterbox(image[1], image[0], input[1], input[0])
            assertEquals(lbDoc["resized_hw"].list().map { it.int() }, listOf(lb.resizedH, lb.resizedW), "${json.name}: resized")
            assertEquals(lbDoc["offset_xy"].list().map { it.int() }, listOf(lb.offsetX, lb.offsetY), "${json.name}: offset")
            val inImage = doc["poses_image"].list()
            for ((p, pose) in inImage.withIndex()) comparePerson("${json.name} (image pixels)", p, pose.list(), lb.toImage(people[p]).keypoints)
        }
    }

    private fun comparePerson(case: String, p: Int, expected: List<Any?>, actual: List<Keypoint>) {
        assertEquals(expected.size, actual.size, "$case: person $p joints")
        for ((j, row) in expected.withIndex()) {
            val (x, y, v) = row.list().map { it.num() }
            val k = actual[j]
            assertClose(v, k.score.toDouble(), 1e-4, "$case: person $p joint $j value")
            if (v > 0) {
                assertClose(x, k.x.toDouble(), 0.01, "$case: person $p joint $j x")
                assertClose(y, k.y.toDouble(), 0.01, "$case: person $p joint $j y")
            }
        }
    }

    private fun assertClose(expected: Double, actual: Double, tol: Double, what: String) {
        if (!(abs(expected - actual) <= tol)) fail("$what: python $expected, kotlin $actual (tolerance $tol)")
    }
}
