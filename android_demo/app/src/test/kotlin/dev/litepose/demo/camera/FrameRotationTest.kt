package dev.litepose.demo.camera

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class FrameRotationTest {
    @Test
    fun `typical phone back camera (sensor 90) in every display rotation`() {
        // Portrait: the landscape sensor image must turn 90 degrees clockwise; landscape (ROTATION_90): none;
        // reverse portrait: 270; reverse landscape (ROTATION_270): 180.
        assertEquals(listOf(90, 0, 270, 180), (0..3).map { FrameRotation.frameRotation(90, FrameRotation.displayDegrees(it), false) })
    }

    @Test
    fun `typical phone front camera (sensor 270) turns with the display`() {
        assertEquals(listOf(270, 0, 90, 180), (0..3).map { FrameRotation.frameRotation(270, FrameRotation.displayDegrees(it), true) })
    }

    @Test
    fun `landscape-native sensor (0) on a tablet`() {
        assertEquals(0, FrameRotation.frameRotation(0, 0, false))
        assertEquals(270, FrameRotation.frameRotation(0, 90, false))
        assertEquals(90, FrameRotation.frameRotation(0, 90, true))
    }

    @Test
    fun `invalid rotations are rejected`() {
        assertThrows<IllegalArgumentException> { FrameRotation.displayDegrees(4) }
        assertThrows<IllegalArgumentException> { FrameRotation.frameRotation(45, 0, false) }
        assertThrows<IllegalArgumentException> { FrameRotation.frameRotation(90, 360, false) }
    }
}
