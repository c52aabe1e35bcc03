package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
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

    /** Writes a 1 x n frame of grey levels with `quantization` and returns the stored red channel. */
    private fun written(type: InputType, quantization: Quantization?, greys: List<Int>): List<Int> {
        val frame = IntArray(greys.size) { argb(greys[it], greys[it], greys[it]) }
        val w = InputWriter(CameraTransform(greys.size, 1, 0), Letterbox(greys.size, 1, greys.size, 1), type, quantization)
        val buf = w.allocate()
        w.write(frame, buf)
        return List(greys.size) { buf.get(3 * it).toInt().let { b -> if (type == InputType.UINT8) b and 0xff else b } }
    }

    @Test
    fun `the contract's quantisation given explicitly writes the same bytes as the default`() {
        val all = (0..255).toList()
        for (type in listOf(InputType.UINT8, InputType.INT8)) {
            assertEquals(written(type, null, all), written(type, type.standardQuantization, all), "$type")
        }
        assertEquals(all.map { it - 128 }, written(InputType.INT8, Quantization(1f, -128), all))
    }

    @Test
    fun `other scales and zero points store round(v over scale) + zero point`() {
        // uint8 scale 2, zp 3: 0 -> 3, 1 -> round(0.5) + 3 = 4, 128 -> 67, 255 -> round(127.5) + 3 = 131.
        assertEquals(listOf(3, 4, 67, 131), written(InputType.UINT8, Quantization(2f, 3), listOf(0, 1, 128, 255)))
        // int8 scale 2, zp -128: 255 -> round(127.5) - 128 = 0.
        assertEquals(listOf(-128, -64, 0), written(InputType.INT8, Quantization(2f, -128), listOf(0, 128, 255)))
        // A scale whose range ends within half a step of 255 is accepted.
        assertEquals(listOf(0, 255), written(InputType.UINT8, Quantization(254.6f / 255f, 0), listOf(0, 255)))
    }

    @Test
    fun `tensor parameters are read into a quantisation or refused with the values named`() {
        assertNull(InputType.FLOAT32.inputQuantization(0f, 0))
        assertEquals(Quantization(1f, 0), InputType.UINT8.inputQuantization(0f, 0), "uint8 without parameters is raw 0..255")
        assertEquals(Quantization(1f, -128), InputType.INT8.inputQuantization(1f, -128))
        assertEquals(Quantization(2f, 3), InputType.UINT8.inputQuantization(2f, 3))
        val refused = mapOf(
            { InputType.INT8.inputQuantization(0f, 0) } to "scale 0.0",
            { InputType.UINT8.inputQuantization(Float.NaN, 0) } to "scale NaN",
            { InputType.UINT8.inputQuantization(1f / 255f, 0) } to "not 0..255", // a model that wants 0..1 inputs
            { InputType.INT8.inputQuantization(1f, 0) } to "zero point 0", // holds only 0..127
            { InputType.UINT8.inputQuantization(1f, 300) } to "outside 0..255",
        )
        for ((call, expected) in refused) {
            val e = assertThrows<IllegalArgumentException> { call() }
            assertTrue(e.message!!.contains(expected), "${e.message} should contain '$expected'")
        }
        assertThrows<IllegalArgumentException> {
            InputWriter(CameraTransform(1, 1, 0), Letterbox(1, 1, 1, 1), InputType.FLOAT32, Quantization(1f, 0))
        }
    }
}
