package dev.litepose.buildlogic

import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File

class ModelBundlerTest {
    @TempDir
    lateinit var tmp: File

    private val models get() = File(tmp, "tflite_models")
    private val out get() = File(tmp, "assets")

    /** A fake flatbuffer: 4-byte root offset, then the "TFL3" file identifier, then payload. */
    private fun fakeModel(payload: String) = byteArrayOf(0x1c, 0, 0, 0) + "TFL3".toByteArray() + payload.toByteArray()

    private fun writeModel(name: String, bytes: ByteArray): File =
        File(models, name).also { it.parentFile.mkdirs(); it.writeBytes(bytes) }

    private fun writeManifest(vararg entries: String) {
        models.mkdirs()
        File(models, "manifest.json").writeText("""{"models": [${entries.joinToString(",")}]}""")
    }

    private fun entry(file: String, sha: String, size: String = "256x192", joints: Any = 14, precision: String = "int8", form: String? = null) =
        """{"file": "$file", "sha256": "$sha", "variant": "XS", "precision": "$precision", "input_size": "$size", "joints": $joints""" +
            (if (form == null) "" else """, "depthwise_form": "$form"""") + "}"

    @Test
    fun `sha256 matches the NIST test vector`() {
        val f = File(tmp, "abc").apply { writeText("abc") }
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", ModelBundler.sha256(f))
    }

    @Test
    fun `valid models are copied with an app manifest and the still`() {
        val a = writeModel("xs_int8.tflite", fakeModel("a"))
        val b = writeModel("sub/s_fp32.tflite", fakeModel("bb"))
        writeManifest(entry("xs_int8.tflite", ModelBundler.sha256(a)), entry("sub/s_fp32.tflite", ModelBundler.sha256(b), "448x640", 17))
        File(out, "models/stale.tflite").apply { parentFile.mkdirs(); writeText("old") }

        val result = ModelBundler.bundle(models, out)
        val entries = result.bundled

        assertEquals(emptyList<SkippedModel>(), result.skipped)
        assertEquals(listOf(192, 640), entries.map { it.inputWidth })
        assertEquals(listOf(256, 448), entries.map { it.inputHeight })
        assertArrayEquals(a.readBytes(), File(out, "models/xs_int8.tflite").readBytes())
        assertArrayEquals(b.readBytes(), File(out, "models/sub/s_fp32.tflite").readBytes())
        assertFalse(File(out, "models/stale.tflite").exists(), "output must be cleared of stale models")
        val app = JSONObject(File(out, ModelBundler.APP_MANIFEST_ASSET).readText())
        val second = app.getJSONArray("models").getJSONObject(1)
        assertEquals("models/sub/s_fp32.tflite", second.getString("asset"))
        assertEquals("448x640", second.getString("input_size"))
        assertEquals(17, second.getInt("joints"))
        assertEquals(ModelBundler.STILL_ASSET, app.getString("benchmark_image"))
        val still = File(out, ModelBundler.STILL_ASSET).readBytes()
        val header = "P6\n640 480\n255\n".toByteArray()
        assertArrayEquals(header, still.copyOfRange(0, header.size))
        assertEquals(header.size + 640 * 480 * 3, still.size)
    }

    @Test
    fun `an HTML page saved as a model fails on the TFL3 identifier`() {
        val html = writeModel("xs.tflite", "<!DOCTYPE html><html>Not Found</html>".toByteArray())
        writeManifest(entry("xs.tflite", ModelBundler.sha256(html)))
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("TFL3") && e.message!!.contains("HTML"), e.message)
        assertFalse(out.exists(), "nothing may be written when a model is bad")
    }

    @Test
    fun `a corrupt model fails on its sha256`() {
        val m = writeModel("xs.tflite", fakeModel("original"))
        val listed = ModelBundler.sha256(m)
        m.writeBytes(fakeModel("changed!"))
        writeManifest(entry("xs.tflite", listed))
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("sha256") && e.message!!.contains(listed), e.message)
    }

    @Test
    fun `a missing manifest fails with the path and the convert command`() {
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("manifest.json: missing") && e.message!!.contains("litepose convert"), e.message)
        assertFalse(e.message!!.contains("litepose export"), e.message)
    }

    @Test
    fun `absent models are skipped with the command that makes them`() {
        val present = writeModel("xs_int8.tflite", fakeModel("a"))
        writeManifest(entry("m_fp32.tflite", "0".repeat(64), size = "448x448", precision = "fp32"), entry("xs_int8.tflite", ModelBundler.sha256(present)))
        File(models, "m_fp32.json").writeText("""{"checkpoint": "litepose-auto-m-crowdpose-448.pth", "graph": "deploy", "precision": "fp32"}""")

        val result = ModelBundler.bundle(models, out)

        assertEquals(listOf("xs_int8.tflite"), result.bundled.map { it.file })
        val skipped = result.skipped.single()
        assertEquals("m_fp32.tflite", skipped.entry.file)
        assertEquals(
            "litepose convert --checkpoint ../shared/checkpoints/litepose-auto-m-crowdpose-448.pth --input-size 448x448 " +
                "--precision fp32 --output tflite_models/m_fp32.tflite",
            skipped.convertCommand,
        )
        assertTrue(skipped.warning.contains("tflite_models/m_fp32.tflite") && skipped.warning.contains(skipped.convertCommand), skipped.warning)
        val app = JSONObject(File(out, ModelBundler.APP_MANIFEST_ASSET).readText()).getJSONArray("models")
        assertEquals(1, app.length(), "only the bundled model is offered in the app")
        assertEquals("models/xs_int8.tflite", app.getJSONObject(0).getString("asset"))
        assertFalse(File(out, "models/m_fp32.tflite").exists())
    }

    @Test
    fun `a model built for x86 hosts is not bundled even when present`() {
        // litepose convert sorts the manifest by file name: "-blocked" comes before ".tflite", so the blocked
        // file would be the first int8 model, the app's default
        val blocked = writeModel("m-int8-blocked.tflite", fakeModel("blocked"))
        val split = writeModel("m-int8.tflite", fakeModel("split"))
        writeManifest(
            entry("m-int8-blocked.tflite", ModelBundler.sha256(blocked), form = "blocked"),
            entry("m-int8.tflite", ModelBundler.sha256(split), form = "split"),
        )

        val result = ModelBundler.bundle(models, out)

        assertEquals(listOf("m-int8.tflite"), result.bundled.map { it.file })
        assertEquals(emptyList<SkippedModel>(), result.skipped)
        val hostOnly = result.hostOnly.single()
        assertEquals("m-int8-blocked.tflite", hostOnly.entry.file)
        assertTrue(hostOnly.warning.contains("tflite_models/m-int8-blocked.tflite") && hostOnly.warning.contains("not bundled"), hostOnly.warning)
        assertFalse(File(out, "models/m-int8-blocked.tflite").exists())
        val app = JSONObject(File(out, ModelBundler.APP_MANIFEST_ASSET).readText()).getJSONArray("models")
        assertEquals(listOf("models/m-int8.tflite"), (0 until app.length()).map { app.getJSONObject(it).getString("asset") })
    }

    @Test
    fun `only models for x86 hosts present fails, naming them`() {
        val blocked = writeModel("m-int8-blocked.tflite", fakeModel("blocked"))
        writeManifest(entry("m-int8-blocked.tflite", ModelBundler.sha256(blocked), form = "blocked"))
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("x86 hosts only: m-int8-blocked.tflite") && e.message!!.contains("litepose convert"), e.message)
        assertFalse(out.exists(), "nothing may be written")
    }

    @Test
    fun `an unknown depthwise form is refused`() {
        val m = writeModel("m.tflite", fakeModel("m"))
        writeManifest(entry("m.tflite", ModelBundler.sha256(m), form = "tiled"))
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("models[0].depthwise_form") && e.message!!.contains("tiled"), e.message)
    }

    @Test
    fun `no model present fails, listing every command`() {
        writeManifest(entry("gone.tflite", "0".repeat(64)), entry("gone_too.tflite", "1".repeat(64), precision = "fp32"))
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("none is in"), e.message)
        assertTrue(e.message!!.contains("--output tflite_models/gone.tflite") && e.message!!.contains("--output tflite_models/gone_too.tflite"), e.message)
        assertFalse(out.exists(), "nothing may be written")
    }

    @Test
    fun `a present model with the wrong sha256 fails even when others are absent`() {
        writeModel("xs.tflite", fakeModel("changed"))
        writeManifest(entry("xs.tflite", "0".repeat(64)), entry("gone.tflite", "1".repeat(64)))
        val e = assertThrows<ModelBundleException> { ModelBundler.bundle(models, out) }
        assertTrue(e.message!!.contains("xs.tflite: sha256"), e.message)
    }

    @Test
    fun `the convert command follows the model card's non-default options`() {
        models.mkdirs()
        val int8 = ModelEntry("sub/m_int8.tflite", "0".repeat(64), "M", "int8", 448, 320, 14)
        // Without a card: a placeholder checkpoint, the README's calibration folder.
        assertEquals(
            "litepose convert --checkpoint CHECKPOINT.pth --input-size 448x320 --precision int8 --calib-images ../shared/data/coco/images --calib-images ../shared/data/aic/images --calib-images ../shared/data/people " +
                "--output tflite_models/sub/m_int8.tflite",
            ModelBundler.convertCommand(models, int8),
        )
        File(models, "sub").mkdirs()
        File(models, "sub/m_int8.json").writeText(
            """{"checkpoint": "ck.pth", "graph": "plain", "calibration": {"count_requested": 50},
               "inputs": {"image": {"dtype": "int8", "scale": 1.0, "zero_point": -128}},
               "activation_ranges": "minmax", "weight_rounding": "nearest"}""",
        )
        assertEquals(
            "litepose convert --checkpoint ../shared/checkpoints/ck.pth --input-size 448x320 --precision int8 --graph plain " +
                "--calib-images ../shared/data/coco/images --calib-images ../shared/data/aic/images --calib-images ../shared/data/people --calib-count 50 --input-dtype int8 --activation-ranges minmax " +
                "--weight-rounding nearest --output tflite_models/sub/m_int8.tflite",
            ModelBundler.convertCommand(models, int8),
        )
        File(models, "sub/m_int8.json").writeText("<html>not json")
        assertTrue(ModelBundler.convertCommand(models, int8).contains("--checkpoint CHECKPOINT.pth"))
    }

    @Test
    fun `bad manifest fields are rejected`() {
        val sha = "a".repeat(64)
        val cases = mapOf(
            entry("../escape.tflite", sha) to "relative path",
            entry("xs.tflite", "xyz") to "64 hex digits",
            entry("xs.tflite", sha, size = "256") to "HxW",
            entry("xs.tflite", sha, size = "255x256") to "multiple of 4",
            entry("xs.tflite", sha, joints = "\"14\"") to "positive integer",
            entry("xs.onnx", sha) to "not a .tflite",
        )
        for ((json, expected) in cases) {
            writeManifest(json)
            val e = assertThrows<ModelBundleException>(json) { ModelBundler.readManifest(File(models, "manifest.json")) }
            assertTrue(e.message!!.contains(expected), "${e.message} should mention '$expected'")
        }
        writeManifest()
        assertThrows<ModelBundleException> { ModelBundler.readManifest(File(models, "manifest.json")) }
        writeManifest(entry("xs.tflite", sha), entry("xs.tflite", sha))
        val dup = assertThrows<ModelBundleException> { ModelBundler.readManifest(File(models, "manifest.json")) }
        assertTrue(dup.message!!.contains("listed twice"), dup.message)
    }

    @Test
    fun `the synthetic still is deterministic and not blank`() {
        val a = SyntheticStill.render(64, 48)
        assertArrayEquals(a, SyntheticStill.render(64, 48))
        val distinct = (0 until 64 * 48).map { k -> Triple(a[3 * k], a[3 * k + 1], a[3 * k + 2]) }.toSet()
        assertTrue(distinct.size > 10, "expected a gradient with figures, got ${distinct.size} colours")
    }
}
