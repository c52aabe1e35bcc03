package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.ByteBuffer

class QuantizationTest {
    @Test
    fun `uint8 and int8 - hand-computed`() {
        val q = Quantization(0.5f, 3)
        val bytes = byteArrayOf(0, 3, -1) // 0, 3, 255 as uint8; 0, 3, -1 as int8
        assertArrayEquals(floatArrayOf(-1.5f, 0f, 126f), q.dequantize(bytes, signed = false))
        assertArrayEquals(floatArrayOf(-1.5f, 0f, -2f), q.dequantize(bytes, signed = true))
    }

    @Test
    fun `float32 product of scale and (q - zp), every byte value`() {
        val q = Quantization(0.0039215689f, -128)
        val bytes = ByteArray(256) { it.toByte() }
        val out = q.dequantize(bytes, signed = true)
        for (k in 0 until 256) {
            val qv = bytes[k].toInt()
            // A float32 product equals the double product rounded once to float32 (24+24 bits fit in 53).
            assertEquals((0.0039215689f.toDouble() * (qv + 128)).toFloat(), out[k], "q=$qv")
        }
        val viaBuffer = FloatArray(256)
        q.dequantize(ByteBuffer.wrap(bytes), true, viaBuffer)
        assertArrayEquals(out, viaBuffer)
        assertThrows<IllegalArgumentException> { Quantization(0f, 0) }
    }
}

class SkeletonTest {
    @Test
    fun `edge counts, ranges and connectivity`() {
        assertEquals(15, Skeleton.CROWDPOSE.edges.size)
        assertEquals(19, Skeleton.COCO.edges.size)
        for (s in Skeleton.entries) {
            val unordered = s.edges.map { (a, b) -> setOf(a, b) }
            assertEquals(unordered.size, unordered.toSet().size, "$s has a duplicate edge")
            assertTrue(unordered.all { it.size == 2 && it.all { j -> j in 0 until s.joints } }, "$s edge out of range")
            // Every joint reachable from joint 0.
            val seen = mutableSetOf(0)
            repeat(s.joints) { for ((a, b) in s.edges) if (a in seen || b in seen) { seen += a; seen += b } }
            assertEquals(s.joints, seen.size, "$s is not connected")
        }
        assertEquals(Skeleton.CROWDPOSE, Skeleton.forJoints(14))
        assertEquals(Skeleton.COCO, Skeleton.forJoints(17))
        assertThrows<IllegalArgumentException> { Skeleton.forJoints(15) }
        assertEquals(12 to 13, Skeleton.CROWDPOSE.edges[0], "head-neck first, as crowd_pose_part_orders")
        assertEquals("head", Skeleton.CROWDPOSE.jointNames[12])
    }

    @Test
    fun `visible edges need both joints detected`() {
        val kps = List(14) { j -> Keypoint(j.toFloat(), 0f, if (j == 12 || j == 13 || j == 0) 0.5f else 0f) }
        val edges = Skeleton.CROWDPOSE.visibleEdges(Person(kps, 0.1f))
        assertEquals(listOf(12 to 13, 13 to 0), edges)
    }

    @Test
    fun `person colours equal python_ref draw person_colours`() {
        // Values printed by python_ref.draw.person_colours(12) (RGB hex).
        val python = listOf(
            0xFFCD19, 0x8A19FF, 0x19FF47, 0xFF192F, 0x1972FF, 0xB5FF19,
            0xFF19F8, 0x19FFC3, 0xFF8019, 0x3D19FF, 0x39FF19, 0xFF197C,
        )
        for ((i, rgb) in python.withIndex()) assertEquals(rgb or (0xFF shl 24), PoseColors.personColor(i), "person $i")
    }
}
