package dev.litepose.demo.data

import dev.litepose.posecore.StageTimings
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class BenchmarkReportTest {
    private fun report(timings: List<StageTimings>, fallback: String? = null) = BenchmarkReport(
        model = "XS int8 256x256", asset = "models/xs.tflite", accelerator = "CPU (XNNPACK)", fallbackReason = fallback,
        threads = 4, image = "benchmark/still.ppm", imageWidth = 640, imageHeight = 480, warmup = 3,
        timings = timings, persons = 2, device = mapOf("model" to "Pixel", "sdk" to "36"),
    )

    @Test
    fun `json holds per-stage summaries that add up`() {
        val json = report(listOf(StageTimings(1.0, 10.0, 2.0), StageTimings(3.0, 30.0, 4.0))).toJson()
        val latency = json.getJSONObject("latency_ms")
        assertEquals(2.0, latency.getJSONObject("pre").getDouble("mean"), 1e-9)
        assertEquals(20.0, latency.getJSONObject("infer").getDouble("mean"), 1e-9)
        assertEquals(3.0, latency.getJSONObject("decode").getDouble("mean"), 1e-9)
        assertEquals(25.0, latency.getJSONObject("total").getDouble("mean"), 1e-9)
        assertEquals(40.0, json.getDouble("fps_mean"), 1e-9) // 1000 / 25 ms
        assertEquals(2, json.getInt("runs"))
        assertEquals("480x640", json.getString("image_size"))
        assertTrue(json.isNull("fallback_reason"))
        // Round trip through text, as it goes to logcat and the file.
        assertEquals("Pixel", JSONObject(json.toString()).getJSONObject("device").getString("model"))
    }

    @Test
    fun `fallback reason is kept and an empty run list is rejected`() {
        assertEquals("no GPU", report(listOf(StageTimings(1.0, 1.0, 1.0)), "no GPU").toJson().getString("fallback_reason"))
        assertThrows<IllegalArgumentException> { report(emptyList()) }
    }
}
