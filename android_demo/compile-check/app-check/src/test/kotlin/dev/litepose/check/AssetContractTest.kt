package dev.litepose.check

import dev.litepose.buildlogic.ModelBundler
import dev.litepose.buildlogic.ModelEntry
import dev.litepose.buildlogic.SyntheticStill
import dev.litepose.demo.data.Ppm
import dev.litepose.demo.ml.ModelCatalog
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

/**
 * The build writes the assets (buildSrc) and the app reads them (app): this checks the two sides agree.
 * Only the Maven check can hold it, since it compiles both in one unit; Gradle keeps them apart.
 */
class AssetContractTest {
    @Test
    fun `the app reads the manifest the build writes`() {
        val entries = listOf(
            ModelEntry("xs_int8.tflite", "0".repeat(64), "XS", "int8", 256, 192, 14),
            ModelEntry("coco/s_fp32.tflite", "f".repeat(64), "S", "fp32", 448, 640, 17),
        )
        val catalog = ModelCatalog.parse(ModelBundler.appManifest(entries).toString(2))
        assertEquals(listOf("models/xs_int8.tflite", "models/coco/s_fp32.tflite"), catalog.models.map { it.asset })
        assertEquals(listOf(256 to 192, 448 to 640), catalog.models.map { it.inputHeight to it.inputWidth })
        assertEquals(listOf(14, 17), catalog.models.map { it.joints })
        assertEquals(ModelBundler.STILL_ASSET, catalog.benchmarkImage)
    }

    @Test
    fun `the app decodes the still the build renders`() {
        val rgb = SyntheticStill.render(32, 24)
        val image = Ppm.decode(SyntheticStill.ppm(32, 24))
        assertEquals(32, image.width)
        assertEquals(24, image.height)
        for (k in 0 until 32 * 24) {
            val expected = (0xff shl 24) or ((rgb[3 * k].toInt() and 0xff) shl 16) or
                ((rgb[3 * k + 1].toInt() and 0xff) shl 8) or (rgb[3 * k + 2].toInt() and 0xff)
            assertEquals(expected, image.pixels[k], "pixel $k")
        }
    }
}
