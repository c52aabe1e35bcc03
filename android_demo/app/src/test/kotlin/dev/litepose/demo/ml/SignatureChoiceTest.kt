package dev.litepose.demo.ml

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test

class SignatureChoiceTest {
    private val outputs = listOf("heatmaps_s4", "tags_s4", "heatmaps_s2")

    @Test
    fun `the signature with the contract's names wins over an earlier one`() {
        val signatures = linkedMapOf(
            "features" to (listOf("image") to listOf("backbone")),
            "serving_default" to (listOf("image") to listOf("heatmaps_s2", "tags_s4", "heatmaps_s4", "extra")),
        )
        assertEquals("serving_default", SignatureChoice.pick(signatures, "image", outputs))
    }

    @Test
    fun `a single input of another name is taken when no signature names it image`() {
        val signatures = linkedMapOf(
            "two_inputs" to (listOf("a", "b") to outputs),
            "one_input" to (listOf("input_1") to outputs),
        )
        assertEquals("one_input", SignatureChoice.pick(signatures, "image", outputs))
    }

    @Test
    fun `none fits without all three outputs`() {
        assertNull(SignatureChoice.pick(mapOf("s" to (listOf("image") to listOf("heatmaps_s4", "tags_s4"))), "image", outputs))
        assertNull(SignatureChoice.pick(emptyMap(), "image", outputs))
    }
}
