package dev.litepose.demo.data

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class MovingAverageTest {
    @Test
    fun `mean covers only the last window values`() {
        val avg = MovingAverage(3)
        assertTrue(avg.mean.isNaN())
        avg.add(1.0); avg.add(2.0)
        assertEquals(1.5, avg.mean, 1e-12)
        avg.add(3.0); avg.add(10.0) // window now 2, 3, 10
        assertEquals(5.0, avg.mean, 1e-12)
        assertEquals(3, avg.count)
        avg.clear()
        assertTrue(avg.mean.isNaN())
    }

    @Test
    fun `non-finite values are rejected`() {
        assertThrows<IllegalArgumentException> { MovingAverage(2).add(Double.NaN) }
    }

    @Test
    fun `fps of a steady 30 Hz stream is 30`() {
        val meter = FpsMeter(10)
        assertTrue(meter.fps.isNaN())
        val period = 1_000_000_000L / 30
        for (k in 0 until 25) meter.tick(5_000L + k * period)
        assertEquals(30.0, meter.fps, 1e-6)
    }

    @Test
    fun `fps follows a slowdown once the window has passed it`() {
        val meter = FpsMeter(5)
        var t = 0L
        repeat(5) { meter.tick(t); t += 20_000_000L } // 50 fps
        assertEquals(50.0, meter.fps, 1e-6)
        repeat(2) { meter.tick(t); t += 100_000_000L } // frames at 100 ms and 200 ms
        // Window holds stamps 40, 60, 80, 100, 200 ms: 4 intervals in 160 ms = 25 fps.
        assertEquals(4 * 1e9 / 160_000_000.0, meter.fps, 1e-6)
        assertThrows<IllegalArgumentException> { meter.tick(0L) }
    }
}
