package dev.litepose.demo.data

import dev.litepose.demo.ml.Accelerator
import dev.litepose.posecore.DecoderParams
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class InferenceSettingsTest {
    @Test
    fun `defaults give the decoder's documented defaults`() {
        assertEquals(DecoderParams(), InferenceSettings().decoderParams)
    }

    @Test
    fun `only model, accelerator and threads need a new interpreter`() {
        val base = InferenceSettings()
        assertFalse(base.needsNewInterpreter(base.copy(detectionThreshold = 0.3, tagThreshold = 2.0, minPersonScore = 0.5f)))
        assertTrue(base.needsNewInterpreter(base.copy(modelIndex = 1)))
        assertTrue(base.needsNewInterpreter(base.copy(accelerator = Accelerator.GPU)))
        assertTrue(base.needsNewInterpreter(base.copy(threads = 2)))
        assertEquals(0.3, base.copy(detectionThreshold = 0.3).decoderParams.detectionThreshold)
    }

    @Test
    fun `thread count is bounded`() {
        assertThrows<IllegalArgumentException> { InferenceSettings(threads = 0) }
        assertThrows<IllegalArgumentException> { InferenceSettings(threads = InferenceSettings.MAX_THREADS + 1) }
    }
}
