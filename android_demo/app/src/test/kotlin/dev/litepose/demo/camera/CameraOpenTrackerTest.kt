package dev.litepose.demo.camera

import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class CameraOpenTrackerTest {
    private val textureA = Any()
    private val textureB = Any()

    @Test
    fun `a second start of the same lens on the same texture is a no-op`() {
        val t = CameraOpenTracker()
        assertFalse(t.isOpenOrOpening(textureA, front = false))
        t.begin(textureA, front = false)
        assertTrue(t.isOpenOrOpening(textureA, front = false), "permission result, then onResume: one open")
        assertFalse(t.isOpenOrOpening(textureA, front = true), "flip: the other lens must open")
        assertFalse(t.isOpenOrOpening(textureB, front = false), "a new surface texture must reopen")
    }

    @Test
    fun `callbacks of a replaced or stopped open are stale`() {
        val t = CameraOpenTracker()
        val first = t.begin(textureA, front = false)
        val second = t.begin(textureA, front = true) // a fast double tap on Flip
        assertNotEquals(first, second)
        assertFalse(t.isCurrent(first))
        assertTrue(t.isCurrent(second))
        t.stop()
        assertFalse(t.isCurrent(second))
        assertFalse(t.active)
        assertFalse(t.isOpenOrOpening(textureA, front = true), "after stop, start opens again")
    }

    @Test
    fun `a failed or disconnected open lets the next start reopen, a stale failure changes nothing`() {
        val t = CameraOpenTracker()
        val first = t.begin(textureA, front = false)
        val second = t.begin(textureA, front = false)
        t.ended(first) // the replaced open's camera reports an error late
        assertTrue(t.isOpenOrOpening(textureA, front = false))
        t.ended(second)
        assertFalse(t.active)
        assertTrue(t.isCurrent(second), "its error message is still the current one to show")
        assertFalse(t.isOpenOrOpening(textureA, front = false))
    }
}
