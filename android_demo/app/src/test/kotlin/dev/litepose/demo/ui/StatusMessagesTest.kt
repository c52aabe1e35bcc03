package dev.litepose.demo.ui

import dev.litepose.demo.ui.StatusMessages.Source
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class StatusMessagesTest {
    @Test
    fun `a camera that works again clears its notice and keeps the model's`() {
        val messages = StatusMessages()
        messages.set(Source.MODEL, "GPU unavailable: running on CPU")
        assertEquals(listOf("GPU unavailable: running on CPU"), messages.lines)
        assertEquals(listOf("Camera: no front camera", "GPU unavailable: running on CPU"), messages.set(Source.CAMERA, "Camera: no front camera"))
        assertEquals(listOf("GPU unavailable: running on CPU"), messages.set(Source.CAMERA, null))
    }

    @Test
    fun `a model that loads clears only the model's notice`() {
        val messages = StatusMessages()
        messages.set(Source.CAMERA, "Camera: disconnected")
        messages.set(Source.MODEL, "Model failed: bad outputs")
        assertEquals(listOf("Camera: disconnected"), messages.set(Source.MODEL, null))
    }

    @Test
    fun `the permission notice comes first and blank text clears`() {
        val messages = StatusMessages()
        messages.set(Source.MODEL, "m")
        messages.set(Source.CAMERA, "c")
        assertEquals(listOf("p", "c", "m"), messages.set(Source.PERMISSION, "p"))
        assertEquals(listOf("c", "m"), messages.set(Source.PERMISSION, " "))
    }
}
