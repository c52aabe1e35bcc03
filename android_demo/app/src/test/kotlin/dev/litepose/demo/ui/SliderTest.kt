package dev.litepose.demo.ui

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class SliderTest {
    @Test
    fun `maps progress linearly and back to the nearest step`() {
        val s = Slider(0.01, 0.9, 89) // 0.01 per step
        assertEquals(0.01, s.value(0), 1e-12)
        assertEquals(0.9, s.value(89), 1e-12)
        assertEquals(0.1, s.value(9), 1e-12)
        assertEquals(9, s.progress(0.1))
        assertEquals(9, s.progress(0.104))
        assertEquals(0, s.progress(-5.0))
        assertEquals(89, s.value(500).let { s.progress(it) })
    }

    @Test
    fun `empty range is rejected`() {
        assertThrows<IllegalArgumentException> { Slider(1.0, 1.0, 10) }
    }
}
