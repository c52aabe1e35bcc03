package dev.litepose.demo.data

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class PpmTest {
    private fun ppm(header: String, vararg rgb: Int) = header.toByteArray(Charsets.US_ASCII) + ByteArray(rgb.size) { rgb[it].toByte() }

    @Test
    fun `decodes a 2x1 image with a comment in the header`() {
        val image = Ppm.decode(ppm("P6\n# made by hand\n2 1\n255\n", 255, 0, 10, 1, 2, 200))
        assertEquals(2, image.width)
        assertEquals(1, image.height)
        assertArrayEquals(intArrayOf(0xffff000a.toInt(), 0xff0102c8.toInt()), image.pixels)
    }

    @Test
    fun `rejects other formats and truncated data`() {
        assertThrows<IllegalArgumentException> { Ppm.decode(ppm("P3\n1 1\n255\n", 0, 0, 0)) }
        assertThrows<IllegalArgumentException> { Ppm.decode(ppm("P6\n1 1\n65535\n", 0, 0, 0)) }
        val e = assertThrows<IllegalArgumentException> { Ppm.decode(ppm("P6\n2 2\n255\n", 1, 2, 3), "still.ppm") }
        assertEquals(true, e.message!!.startsWith("still.ppm: pixel data truncated"), e.message)
    }
}
