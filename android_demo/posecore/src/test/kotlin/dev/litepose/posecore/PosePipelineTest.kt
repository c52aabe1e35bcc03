package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.nio.ByteBuffer

/**
 * A stand-in model: it finds the brightest input pixel and answers with one 1-joint person whose
 * det peak sits in that pixel's half-resolution cell. So the test follows a real point through
 * rotation, letterbox, decode and the inverse mapping.
 */
private class BrightestPixelModel(override val inputWidth: Int, override val inputHeight: Int) : PoseModel {
    override val joints = 1
    var closed = false
    var calls = 0
    var lastCell = -1 to -1
    val inputs = ArrayList<ByteBuffer>()

    override fun run(input: ByteBuffer): ModelOutputs {
        calls++
        inputs.add(input)
        var best = -1
        var bestValue = -1
        for (p in 0 until inputWidth * inputHeight) {
            val r = input.get(3 * p).toInt() and 0xff
            if (r > bestValue) { bestValue = r; best = p }
        }
        val h4 = inputHeight / 4
        val w4 = inputWidth / 4
        val hm2 = FloatArray(4 * h4 * w4)
        val x2 = (best % inputWidth) / 2
        val y2 = (best / inputWidth) / 2
        hm2[y2 * 2 * w4 + x2] = 1.8f
        lastCell = x2 to y2
        return ModelOutputs(FloatArray(h4 * w4), FloatArray(h4 * w4), hm2, h4, w4, 1)
    }

    override fun close() { closed = true }
}

class PosePipelineTest {
    @Test
    fun `a bright pixel comes back at its upright position`() {
        // Frame 64x48 in sensor orientation, rotated 90 -> upright 48x64; model 32x32:
        // s = min(32/48, 32/64) = 0.5 -> 24x32 at ox 4. Bright frame pixel (40, 10) -> upright (48-10.5, 40.5).
        val frame = IntArray(64 * 48) { 0xFF000000.toInt() }
        for (dy in 0..1) for (dx in 0..1) frame[(10 + dy) * 64 + 40 + dx] = 0xFFFF0000.toInt()
        val model = BrightestPixelModel(32, 32)
        model.use {
            val pipeline = PosePipeline(it)
            val result = pipeline.process(frame, 64, 48, 90)
            val person = result.persons.single()
            val k = person.keypoints[0]
            assertEquals(0.9f, k.score)
            // No neighbours -> adjust -0.25 in x and y: model point = 2 * (cell + 0.25), within one model pixel of the
            // bright spot; in upright pixels (x2 scale) within 2 px of (37, 41).
            assertEquals(37.0, k.x.toDouble(), 2.0)
            assertEquals(41.0, k.y.toDouble(), 2.0)
            val expected = result.letterbox.toImage(Point(2 * (it.lastCell.first + 0.25f), 2 * (it.lastCell.second + 0.25f)))
            assertEquals(expected.x, k.x, 1e-4f); assertEquals(expected.y, k.y, 1e-4f)
            assertTrue(result.timings.preMs >= 0 && result.timings.inferMs >= 0 && result.timings.decodeMs >= 0)
            assertEquals(result.timings.preMs + result.timings.inferMs + result.timings.decodeMs, result.timings.totalMs, 1e-9)
            pipeline.process(frame, 64, 48, 90)
            assertEquals(2, it.calls)
        }
        assertTrue(model.closed)
    }

    @Test
    fun `persons below minPersonScore are dropped`() {
        val frame = IntArray(32 * 32) { 0xFF000000.toInt() }
        frame[5 * 32 + 5] = 0xFFFF0000.toInt()
        val model = BrightestPixelModel(32, 32)
        assertEquals(1, PosePipeline(model, minPersonScore = 0.9f).process(frame, 32, 32, 0).persons.size)
        assertEquals(0, PosePipeline(model, minPersonScore = 0.91f).process(frame, 32, 32, 0).persons.size)
    }

    @Test
    fun `thresholds change in place, keeping the input buffer, with a fresh pipeline's results`() {
        val frame = IntArray(32 * 32) { 0xFF000000.toInt() }
        frame[5 * 32 + 5] = 0xFFFF0000.toInt()
        val model = BrightestPixelModel(32, 32)
        val pipeline = PosePipeline(model, FastDecoder(), minPersonScore = 0f)
        assertEquals(1, pipeline.process(frame, 32, 32, 0).persons.size)
        for ((params, minScore) in listOf(DecoderParams(detectionThreshold = 2.0) to 0f, DecoderParams(tagThreshold = 0.2) to 0.95f,
            DecoderParams(detectionThreshold = 0.5) to 0.5f)) {
            pipeline.decoder.params = params
            pipeline.minPersonScore = minScore
            val fresh = PosePipeline(BrightestPixelModel(32, 32), FastDecoder(params), minScore).process(frame, 32, 32, 0)
            assertEquals(fresh.persons, pipeline.process(frame, 32, 32, 0).persons, "$params, min score $minScore")
        }
        assertTrue(model.inputs.all { it === model.inputs[0] }, "the input buffer must be reused")
    }
}
