package dev.litepose.demo.camera

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.nio.ByteBuffer
import kotlin.math.abs
import kotlin.math.roundToInt

class YuvToArgbTest {
    private val width = 6
    private val height = 4

    // Luma ramp and distinct chroma per 2x2 block, chosen to exercise saturation on both ends.
    private val luma = IntArray(width * height) { 20 + 9 * it }
    private val cb = intArrayOf(128, 20, 240, 90, 160, 128) // 3x2 chroma blocks
    private val cr = intArrayOf(128, 230, 30, 200, 60, 128)

    private fun argb(r: Int, g: Int, b: Int) = (0xff shl 24) or (r shl 16) or (g shl 8) or b

    /** JFIF full-range BT.601 in double precision: the independent reference. */
    private fun reference(): IntArray = IntArray(width * height) { k ->
        val x = k % width
        val y = k / width
        val c = (y / 2) * (width / 2) + x / 2
        val yy = luma[k].toDouble()
        val u = cb[c] - 128.0
        val v = cr[c] - 128.0
        fun clamp(d: Double) = d.roundToInt().coerceIn(0, 255)
        argb(clamp(yy + 1.402 * v), clamp(yy - 0.344136 * u - 0.714136 * v), clamp(yy + 1.772 * u))
    }

    private fun assertClose(expected: IntArray, actual: IntArray) {
        for (k in expected.indices) {
            for (shift in intArrayOf(16, 8, 0)) {
                val e = (expected[k] shr shift) and 0xff
                val a = (actual[k] shr shift) and 0xff
                assertTrue(abs(e - a) <= 1, "pixel $k channel shift $shift: expected $e, got $a")
            }
            assertEquals(0xff, actual[k] ushr 24, "alpha of pixel $k")
        }
    }

    /** I420: three planes, pixel stride 1, rows padded to `rowStride`. */
    private fun planar(rowStride: Int): Triple<YuvPlane, YuvPlane, YuvPlane> {
        val y = ByteBuffer.allocate(rowStride * height)
        for (k in luma.indices) y.put((k / width) * rowStride + k % width, luma[k].toByte())
        val cw = width / 2
        val u = ByteBuffer.allocate(rowStride * height / 2)
        val v = ByteBuffer.allocate(rowStride * height / 2)
        for (c in cb.indices) {
            u.put((c / cw) * rowStride + c % cw, cb[c].toByte())
            v.put((c / cw) * rowStride + c % cw, cr[c].toByte())
        }
        return Triple(YuvPlane(y, rowStride, 1), YuvPlane(u, rowStride, 1), YuvPlane(v, rowStride, 1))
    }

    /** NV21 as camera2 exposes it: one interleaved VU buffer, U plane = V plane shifted by one byte, pixel stride 2. */
    private fun semiPlanarVu(rowStride: Int): Triple<YuvPlane, YuvPlane, YuvPlane> {
        val y = ByteBuffer.allocate(rowStride * height)
        for (k in luma.indices) y.put((k / width) * rowStride + k % width, luma[k].toByte())
        val cw = width / 2
        val vu = ByteArray(rowStride * height / 2)
        for (c in cb.indices) {
            val o = (c / cw) * rowStride + 2 * (c % cw)
            vu[o] = cr[c].toByte()
            vu[o + 1] = cb[c].toByte()
        }
        val v = ByteBuffer.wrap(vu)
        val u = ByteBuffer.wrap(vu, 1, vu.size - 1).slice()
        return Triple(y, u, v).let { (yb, ub, vb) -> Triple(YuvPlane(yb, rowStride, 1), YuvPlane(ub, rowStride, 2), YuvPlane(vb, rowStride, 2)) }
    }

    @Test
    fun `planar frame with padded rows matches the BT601 full-range formula`() {
        val (y, u, v) = planar(rowStride = 8)
        val out = IntArray(width * height)
        YuvToArgb.convert(width, height, y, u, v, out)
        assertClose(reference(), out)
    }

    @Test
    fun `interleaved NV21 layout gives the same pixels as planar`() {
        val planarOut = IntArray(width * height)
        planar(8).let { (y, u, v) -> YuvToArgb.convert(width, height, y, u, v, planarOut) }
        val nv21Out = IntArray(width * height)
        semiPlanarVu(10).let { (y, u, v) -> YuvToArgb.convert(width, height, y, u, v, nv21Out) }
        assertArrayEquals(planarOut, nv21Out)
    }

    @Test
    fun `neutral chroma is exact grey and saturated chroma clamps`() {
        val (y, u, v) = planar(8)
        val out = IntArray(width * height)
        YuvToArgb.convert(width, height, y, u, v, out)
        // Block 0 (pixels x 0..1, rows 0..1) has U = V = 128: R = G = B = Y exactly.
        for (k in intArrayOf(0, 1, width, width + 1)) assertEquals(argb(luma[k], luma[k], luma[k]), out[k])
        // Block 1 (x 2..3, rows 0..1), hand-computed pixel 2: Y = 38, U' = 20 - 128 = -108, V' = 230 - 128 = 102
        // -> R = 38 + 143.0 = 181, G = 38 + 37.17 - 72.84 = 2.3 -> 2, B = 38 - 191.4 clamps to 0.
        assertEquals(argb(181, 2, 0), out[2])
    }

    @Test
    fun `a crop window reads the pixels and chroma blocks of the full frame at its place`() {
        val full = IntArray(width * height)
        planar(8).let { (y, u, v) -> YuvToArgb.convert(width, height, y, u, v, full) }
        // odd origin: the window's first column shares its chroma block with the column left of it
        val (left, top, w, h) = listOf(1, 1, 4, 3)
        val window = IntArray(w * h)
        semiPlanarVu(10).let { (y, u, v) -> YuvToArgb.convert(w, h, y, u, v, window, left, top) }
        for (row in 0 until h) for (col in 0 until w) {
            assertEquals(full[(top + row) * width + left + col], window[row * w + col], "window pixel ($col, $row)")
        }
    }

    @Test
    fun `the buffers are read absolutely and left untouched`() {
        val (y, u, v) = planar(8)
        y.buffer.position(3)
        YuvToArgb.convert(width, height, y, u, v, IntArray(width * height))
        assertEquals(3, y.buffer.position())
    }
}
