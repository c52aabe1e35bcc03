package dev.litepose.demo.ui

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class HudTextTest {
    @Test
    fun `formats moving averages and shows a dash before the first measurement`() {
        val lines = HudText.lines(29.96, 3.04, 41.25, Double.NaN, 3, "GPU", "XS int8 256x256")
        assertEquals(
            listOf("FPS 30.0   people 3", "pre 3.0 ms   infer 41.3 ms   decode – ms", "XS int8 256x256 — GPU"),
            lines,
        )
    }
}
