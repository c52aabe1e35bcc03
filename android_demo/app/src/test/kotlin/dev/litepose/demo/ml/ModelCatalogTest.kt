package dev.litepose.demo.ml

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class ModelCatalogTest {
    private val sha = "ab".repeat(32)

    private fun model(asset: String = "models/xs.tflite", size: String = "448x640", joints: String = "14", precision: String = "int8") =
        """{"asset": "$asset", "variant": "XS", "precision": "$precision", "input_size": "$size", "joints": $joints, "sha256": "$sha"}"""

    private fun catalogOf(vararg precisions: String) = ModelCatalog.parse(
        """{"models": [${precisions.mapIndexed { k, p -> model(asset = "models/m$k.tflite", precision = p) }.joinToString(",")}],
           "benchmark_image": "b"}""",
    )

    @Test
    fun `parses models with height-first input sizes`() {
        val catalog = ModelCatalog.parse("""{"models": [${model()}], "benchmark_image": "benchmark/still.ppm"}""")
        val spec = catalog.models.single()
        assertEquals(448, spec.inputHeight)
        assertEquals(640, spec.inputWidth)
        assertEquals(14, spec.joints)
        assertEquals("XS int8 448x640", spec.label)
        assertEquals("benchmark/still.ppm", catalog.benchmarkImage)
    }

    @Test
    fun `errors name the manifest and the field`() {
        val cases = mapOf(
            "not json" to "not valid JSON",
            """{"models": [], "benchmark_image": "b"}""" to "no models bundled",
            """{"models": [${model(size = "640")}], "benchmark_image": "b"}""" to "models[0].input_size",
            """{"models": [${model(joints = "0")}], "benchmark_image": "b"}""" to "models[0].joints",
            """{"models": [${model(asset = "")}], "benchmark_image": "b"}""" to "models[0].asset",
            """{"models": [${model()}]}""" to "no benchmark_image",
        )
        for ((json, expected) in cases) {
            val e = assertThrows<IllegalArgumentException>(json) { ModelCatalog.parse(json) }
            assertTrue(e.message!!.startsWith("assets/models/manifest.json: ") && e.message!!.contains(expected), e.message)
        }
    }

    @Test
    fun `the default model is the first int8 one, else the first`() {
        assertEquals(1, catalogOf("fp32", "int8", "int8").defaultModelIndex)
        assertEquals(0, catalogOf("INT8", "fp32").defaultModelIndex)
        assertEquals(0, catalogOf("fp32", "fp16").defaultModelIndex)
    }
}
