package dev.litepose.demo.data

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import kotlin.math.sqrt

class LatencySummaryTest {
    @Test
    fun `summary of a hand-computed sample`() {
        // numpy: mean 4, std (ddof=0) sqrt(10), median 3, percentile 90 (linear) = 4 + 0.6 * (10 - 4) = 7.6
        val s = LatencySummary.of(doubleArrayOf(10.0, 2.0, 4.0, 1.0, 3.0))
        assertEquals(5, s.count)
        assertEquals(4.0, s.meanMs, 1e-12)
        assertEquals(sqrt(10.0), s.stdMs, 1e-12)
        assertEquals(1.0, s.minMs)
        assertEquals(3.0, s.medianMs, 1e-12)
        assertEquals(7.6, s.p90Ms, 1e-12)
        assertEquals(10.0, s.maxMs)
        assertEquals(3.162, s.toJson().getDouble("std"), 1e-12)
    }

    @Test
    fun `even count median interpolates`() {
        assertEquals(2.5, LatencySummary.of(doubleArrayOf(4.0, 1.0, 3.0, 2.0)).medianMs, 1e-12)
    }

    @Test
    fun `empty or non-finite samples are rejected`() {
        assertThrows<IllegalArgumentException> { LatencySummary.of(DoubleArray(0)) }
        assertThrows<IllegalArgumentException> { LatencySummary.of(doubleArrayOf(1.0, Double.POSITIVE_INFINITY)) }
    }
}
