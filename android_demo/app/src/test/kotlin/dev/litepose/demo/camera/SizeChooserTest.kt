package dev.litepose.demo.camera

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class SizeChooserTest {
    private fun sizes(vararg s: String) = s.map { it.split("x").let { (w, h) -> FrameSize(w.toInt(), h.toInt()) } }

    @Test
    fun `analysis near 640x480 and the largest preview of the same aspect within 1080p`() {
        val (analysis, preview) = SizeChooser.choose(
            sizes("1920x1080", "1280x720", "640x480", "320x240", "720x480"),
            sizes("4000x3000", "1920x1080", "1440x1080", "1280x960", "1280x720"),
        )
        assertEquals(FrameSize(640, 480), analysis)
        assertEquals(FrameSize(1440, 1080), preview)
    }

    @Test
    fun `an analysis size without a matching preview aspect is skipped for the next best`() {
        // 640x480 (4:3) has no 4:3 preview <= 1080p; 720x480 (3:2) has none; 640x360 (16:9) has 1920x1080.
        val (analysis, preview) = SizeChooser.choose(
            sizes("640x480", "720x480", "640x360"),
            sizes("4032x3024", "1920x1080", "1280x720"),
        )
        assertEquals(FrameSize(640, 360), analysis)
        assertEquals(FrameSize(1920, 1080), preview)
    }

    @Test
    fun `no sizes is an error`() {
        assertThrows<IllegalArgumentException> { SizeChooser.choose(emptyList(), sizes("640x480")) }
    }
}
