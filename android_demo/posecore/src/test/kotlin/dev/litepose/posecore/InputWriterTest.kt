package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import java.nio.ByteBuffer

class InputWriterTest {
    private fun argb(r: Int, g: Int, b: Int) = (0xFF shl 24) or (r shl 16) or (g shl 8) or b

    private fun bytes(buf: ByteBuffer): List<Int> = List(buf.limit()) { buf.get(it).toInt() and 0xff }

    @Test
    fun `same size, no rotation copies RGB`() {
        val frame = IntArray(8) { argb(it, 10 * it, 255 - it) }
        val cam = CameraTransform(4, 2, 0)
        val w = InputWriter(cam, Letterbox(4, 2, 4, 2), InputType.UINT8)
        val buf = w.allocate()
        w.write(frame, buf)
        assertEquals(List(8) { listOf(it, 10 * it, 255 - it) }.flatten(), bytes(buf))
    }

    @Test
    fun `rotation 90 is an exact pixel permutation`() {
        // Frame 3x2: a b c / d e f. Rotated clockwise: upright 2x3 = d a / e b / f c.
        val frame = IntArray(6) { argb(it, 0, 0) }
        val cam = CameraTransform(3, 2, 90)
        val w = InputWriter(cam, Letterbox(2, 3, 2, 3), InputType.UINT8)
        val buf = w.allocate()
        w.write(frame, buf)
        assertEquals(listOf(3, 0, 4, 1, 5, 2), bytes(buf).chunked(3).map { it[0] })
    }

    @Test
    fun `letterbox bars have the mean colour and a 2x downscale averages pixel pairs`() {
        // Frame 4x2 into 2x2: s = 0.5, 2x1 image at oy 0 (rows: (2 - 1) // 2 = 0), second row mean colour.
        val frame = intArrayOf(argb(0, 0, 0), argb(100, 0, 0), argb(10, 0, 0), argb(30, 0, 0),
            argb(200, 0, 0), argb(200, 0, 0), argb(50, 0, 0), argb(50, 0, 0))
        val lb = Letterbox(4, 2, 2, 2)
        assertEquals(1, lb.resizedH); assertEquals(0, lb.offsetY)
        val w = InputWriter(CameraTransform(4, 2, 0), lb, InputType.UINT8)
        val buf = w.allocate()
        w.write(frame, buf)
        // Source x = (d + 0.5) * 2 - 0.5 = 0.5, 2.5; source y = (0 + 0.5) * 2 - 0.5 = 0.5.
        // Red: mean of 0,100,200,200 = 125; mean of 10,30,50,50 = 35.
        assertEquals(listOf(125, 35, 124, 124), bytes(buf).chunked(3).map { it[0] })
        assertEquals(listOf(116, 104), bytes(buf).drop(10).take(2))
    }

    @Test
    fun `int8 and float32 inputs`() {
        val frame = intArrayOf(argb(0, 128, 255))
        val int8 = InputWriter(CameraTransform(1, 1, 0), Letterbox(1, 1, 1, 1), InputType.INT8)
        val b8 = int8.allocate(); int8.write(frame, b8)
        assertEquals(listOf(-128, 0, 127), List(3) { b8.get(it).toInt() })
        val f32 = InputWriter(CameraTransform(1, 1, 0), Letterbox(1, 1, 1, 1), InputType.FLOAT32)
        val bf = f32.allocate(); f32.write(frame, bf)
        assertEquals(listOf(0f, 128f, 255f), List(3) { bf.getFloat(4 * it) })
    }
}
