package dev.litepose.demo.ml

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class AcceleratorStatusTest {
    @Test
    fun `describes what runs and why a requested delegate is not used`() {
        val gpu = AcceleratorStatus(Accelerator.GPU, Accelerator.GPU, 1, null)
        assertEquals("GPU", gpu.describe())
        assertFalse(gpu.isFallback)
        val fallback = AcceleratorStatus(Accelerator.GPU, Accelerator.CPU, 4, "not on the compatibility list")
        assertTrue(fallback.isFallback)
        assertEquals("CPU (XNNPACK) ×4 — GPU not used: not on the compatibility list", fallback.describe())
    }
}
