package dev.litepose.buildlogic

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject
import java.io.File
import java.security.MessageDigest

/** A build-breaking problem with the bundled models; the message names the file and what is wrong. */
class ModelBundleException(message: String) : RuntimeException(message)

/**
 * One model of `tflite_models/manifest.json`.
 *
 * @property file path relative to `tflite_models/` (also its path below `assets/models/`).
 * @property inputHeight model input H (manifest `input_size` is "HxW", height first).
 * @property depthwiseForm the manifest's optional `depthwise_form` ("split" | "blocked", int8 builds).
 */
data class ModelEntry(
    val file: String,
    val sha256: String,
    val variant: String,
    val precision: String,
    val inputHeight: Int,
    val inputWidth: Int,
    val joints: Int,
    val depthwiseForm: String? = null,
) {
    val inputSize: String get() = "${inputHeight}x$inputWidth"

    /**
     * Built with `--depthwise-form blocked`: its 7×7 depthwise convs run as grouped convs on pixel blocks, fast
     * only on x86 CPUs with fast int8 GEMMs (Intel AMX) and ~20× larger (110 MB for LitePose-M): not for phones.
     */
    val hostOnly: Boolean get() = depthwiseForm == "blocked"
}

/** A manifest entry whose file is absent (the .tflite files are git-ignored build output): left out of the app. */
data class SkippedModel(val entry: ModelEntry, val convertCommand: String) {
    /** The build warning: which file, and the command that makes it. */
    val warning: String
        get() = "tflite_models/${entry.file} is not there (models are git-ignored; make them with `litepose convert`), " +
            "so it is not bundled. From the repository root: $convertCommand"
}

/** A manifest entry made for x86 hosts ([ModelEntry.hostOnly]): left out of the app even when present. */
data class HostOnlyModel(val entry: ModelEntry) {
    val warning: String
        get() = "tflite_models/${entry.file} is built with --depthwise-form ${entry.depthwiseForm} (for x86 hosts " +
            "with fast int8 GEMMs, ~20x larger than the split form, slow on phones), so it is not bundled"
}

/**
 * What [ModelBundler.bundle] did: the models in the app, the listed ones that were not there, and the ones
 * made for x86 hosts.
 */
data class BundleResult(val bundled: List<ModelEntry>, val skipped: List<SkippedModel>, val hostOnly: List<HostOnlyModel> = emptyList())

/**
 * Copies the models listed in `tflite_models/manifest.json` into the app's generated assets after checking
 * each one (TFLite flatbuffer identifier "TFL3" at byte 4, sha256 as listed), writes the app's model manifest
 * and the synthetic benchmark still. The manifest is committed but the .tflite files are made by
 * `litepose convert` and git-ignored, so a listed file that is absent is skipped (with the command that makes
 * it); the build fails if none is there, or if a present file is corrupt or stale: a bad model (or an HTML
 * error page saved under a model's name) must never ship.
 */
object ModelBundler {
    const val MANIFEST_NAME = "manifest.json"
    const val ASSET_MODELS_DIR = "models"
    const val APP_MANIFEST_ASSET = "models/manifest.json"
    const val STILL_ASSET = "benchmark/still.ppm"
    const val STILL_WIDTH = 640
    const val STILL_HEIGHT = 480

    private val TFLITE_IDENTIFIER = "TFL3".toByteArray(Charsets.US_ASCII)
    private val SHA256_HEX = Regex("^[0-9a-f]{64}$")
    private val INPUT_SIZE = Regex("^([1-9][0-9]*)x([1-9][0-9]*)$")
    private val DEPTHWISE_FORMS = listOf("split", "blocked")

    /** Checkpoint folder of the repository README's commands, relative to the repository root. */
    const val CHECKPOINTS_DIR = "../shared/checkpoints"

    /** The repository README's calibration folders: COCO, AI Challenger and people photos (CrowdPose kept out for evaluation). */
    val CALIBRATION_DIRS = listOf("../shared/data/coco/images", "../shared/data/aic/images", "../shared/data/people")

    /**
     * Checks the models of `modelsDir/manifest.json` that are there and writes `outDir/models/...`,
     * `outDir/models/manifest.json` and `outDir/benchmark/still.ppm`; `outDir` is emptied first so no stale
     * model ships. Absent models are skipped and returned with the command that makes each.
     */
    fun bundle(modelsDir: File, outDir: File): BundleResult {
        val manifest = File(modelsDir, MANIFEST_NAME)
        val all = readManifest(manifest)
        val (hostOnly, forPhones) = all.partition { it.hostOnly }
        val (entries, absent) = forPhones.partition { File(modelsDir, it.file).exists() }
        val skipped = absent.map { SkippedModel(it, convertCommand(modelsDir, it)) }
        if (entries.isEmpty()) {
            val hosts = if (hostOnly.isEmpty()) "" else " (${hostOnly.size} more for x86 hosts only: ${hostOnly.joinToString { it.file }})"
            val commands = skipped.map { it.convertCommand }.ifEmpty {
                listOf("litepose convert --checkpoint CHECKPOINT.pth --precision int8 " +
                    CALIBRATION_DIRS.joinToString(" ") { "--calib-images $it" } + " --output tflite_models/NAME.tflite")
            }
            throw ModelBundleException(
                "$manifest lists ${forPhones.size} model(s) for phones$hosts but none is in $modelsDir (they are " +
                    "git-ignored build output); make at least one, from the repository root:\n" + commands.joinToString("\n") { "  $it" },
            )
        }
        for (entry in entries) verifyModel(modelsDir, manifest, entry)
        if (outDir.exists() && !outDir.deleteRecursively()) throw ModelBundleException("$outDir: cannot clear the output directory")
        for (entry in entries) {
            val target = File(outDir, "$ASSET_MODELS_DIR/${entry.file}")
            target.parentFile.mkdirs()
            File(modelsDir, entry.file).copyTo(target, overwrite = true)
        }
        writeText(File(outDir, APP_MANIFEST_ASSET), appManifest(entries).toString(2) + "\n")
        val still = File(outDir, STILL_ASSET)
        still.parentFile.mkdirs()
        still.writeBytes(SyntheticStill.ppm(STILL_WIDTH, STILL_HEIGHT))
        return BundleResult(entries, skipped, hostOnly.map { HostOnlyModel(it) })
    }

    /**
     * The `litepose convert` command, run from the repository root, that writes `entry.file` and its manifest
     * entry. The checkpoint and non-default options come from the model card next to the file
     * (`<name>.json`, committed) when it is readable; int8 calibrates on [CALIBRATION_DIRS], as the repository README does.
     */
    fun convertCommand(modelsDir: File, entry: ModelEntry): String {
        val card = File(modelsDir, entry.file.removeSuffix(".tflite") + ".json").takeIf { it.isFile }?.let {
            try {
                JSONObject(it.readText())
            } catch (_: JSONException) {
                null
            }
        }
        val checkpoint = card?.optString("checkpoint", "")?.takeIf { it.isNotBlank() }?.let { "$CHECKPOINTS_DIR/$it" }
            ?: "CHECKPOINT.pth"
        val parts = mutableListOf("litepose convert", "--checkpoint $checkpoint", "--input-size ${entry.inputSize}", "--precision ${entry.precision}")
        card?.optString("graph", "")?.takeIf { it.isNotBlank() && it != "deploy" }?.let { parts += "--graph $it" }
        if (entry.precision == "int8") {
            CALIBRATION_DIRS.forEach { parts += "--calib-images $it" }
            val requested = card?.optJSONObject("calibration")?.optInt("count_requested", 100) ?: 100
            if (requested != 100) parts += "--calib-count $requested"
            val inputDtype = card?.optJSONObject("inputs")?.optJSONObject("image")?.optString("dtype", "uint8") ?: "uint8"
            if (inputDtype == "int8") parts += "--input-dtype int8"
            card?.optString("activation_ranges", "")?.takeIf { it.isNotBlank() && it != "mse-backbone" }?.let { parts += "--activation-ranges $it" }
            card?.optString("weight_rounding", "")?.takeIf { it.isNotBlank() && it != "gptq" }?.let { parts += "--weight-rounding $it" }
        }
        parts += "--output tflite_models/${entry.file}"
        return parts.joinToString(" ")
    }

    /** Parses and validates the manifest (not the model files). */
    fun readManifest(manifest: File): List<ModelEntry> {
        if (!manifest.isFile) {
            throw ModelBundleException(
                "$manifest: missing; convert a model first (`litepose convert --checkpoint CKPT --precision int8 --calib-images DIR " +
                    "--output tflite_models/NAME.tflite` writes it and the manifest; see android_demo/README.md)",
            )
        }
        val root = try {
            JSONObject(manifest.readText())
        } catch (e: JSONException) {
            throw ModelBundleException("$manifest: not valid JSON (${e.message})")
        }
        val models = root.optJSONArray("models") ?: throw ModelBundleException("$manifest: no \"models\" list")
        if (models.length() == 0) throw ModelBundleException("$manifest: the \"models\" list is empty; the app needs at least one model")
        val entries = (0 until models.length()).map { k ->
            val item = models.optJSONObject(k) ?: throw ModelBundleException("$manifest: models[$k] is not an object")
            parseEntry(manifest, k, item)
        }
        val duplicates = entries.groupBy { it.file }.filterValues { it.size > 1 }.keys
        if (duplicates.isNotEmpty()) throw ModelBundleException("$manifest: listed twice: ${duplicates.sorted().joinToString()}")
        return entries
    }

    private fun parseEntry(manifest: File, k: Int, item: JSONObject): ModelEntry {
        fun text(key: String): String {
            val value = item.opt(key)
            if (value !is String || value.isBlank()) throw ModelBundleException("$manifest: models[$k].$key must be a non-empty string")
            return value
        }
        val file = text("file")
        if (file.startsWith("/") || file.contains('\\') || file.split('/').any { it == ".." || it.isEmpty() }) {
            throw ModelBundleException("$manifest: models[$k].file \"$file\" must be a relative path inside tflite_models/")
        }
        if (!file.endsWith(".tflite")) throw ModelBundleException("$manifest: models[$k].file \"$file\" is not a .tflite file")
        val sha256 = text("sha256").lowercase()
        if (!SHA256_HEX.matches(sha256)) throw ModelBundleException("$manifest: models[$k].sha256 is not 64 hex digits: \"$sha256\"")
        val size = INPUT_SIZE.matchEntire(text("input_size"))
            ?: throw ModelBundleException("$manifest: models[$k].input_size must be \"HxW\" (e.g. \"256x256\"), got \"${item.opt("input_size")}\"")
        val height = size.groupValues[1].toInt()
        val width = size.groupValues[2].toInt()
        if (height % 4 != 0 || width % 4 != 0) {
            throw ModelBundleException("$manifest: models[$k].input_size ${height}x$width is not a multiple of 4 (stride-4 outputs)")
        }
        val joints = item.opt("joints")
        if (joints !is Int || joints <= 0) throw ModelBundleException("$manifest: models[$k].joints must be a positive integer, got $joints")
        val form = item.opt("depthwise_form")
        if (form != null && form != JSONObject.NULL && (form !is String || form !in DEPTHWISE_FORMS)) {
            throw ModelBundleException("$manifest: models[$k].depthwise_form must be one of ${DEPTHWISE_FORMS.joinToString()}, got $form")
        }
        return ModelEntry(file, sha256, text("variant"), text("precision"), height, width, joints, form as? String)
    }

    /** Fails unless `modelsDir/entry.file` exists, is a TFLite flatbuffer and has the listed sha256. */
    fun verifyModel(modelsDir: File, manifest: File, entry: ModelEntry) {
        val model = File(modelsDir, entry.file)
        if (!model.isFile) throw ModelBundleException("$model: missing (listed in $manifest)")
        val head = ByteArray(8)
        val read = model.inputStream().use { it.readNBytes(head, 0, head.size) }
        if (read < head.size || !head.copyOfRange(4, 8).contentEquals(TFLITE_IDENTIFIER)) {
            val hint = if (read > 0 && (head[0] == '<'.code.toByte() || head[0] == '{'.code.toByte())) {
                " (it starts like an HTML/JSON document: an error page saved as a model?)"
            } else {
                ""
            }
            throw ModelBundleException("$model: not a TFLite model, no \"TFL3\" identifier at byte 4$hint")
        }
        val actual = sha256(model)
        if (actual != entry.sha256) {
            throw ModelBundleException("$model: sha256 $actual does not match $manifest (${entry.sha256}); corrupt or stale file")
        }
    }

    /** Hex sha256 of a file, streamed. */
    fun sha256(file: File): String {
        val digest = MessageDigest.getInstance("SHA-256")
        file.inputStream().use { input ->
            val buffer = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
        return digest.digest().joinToString("") { "%02x".format(it) }
    }

    /** The manifest the app reads from its assets: verified entries with their asset paths. */
    fun appManifest(entries: List<ModelEntry>): JSONObject {
        val models = JSONArray()
        for (e in entries) {
            models.put(
                JSONObject()
                    .put("asset", "$ASSET_MODELS_DIR/${e.file}")
                    .put("variant", e.variant)
                    .put("precision", e.precision)
                    .put("input_size", e.inputSize)
                    .put("joints", e.joints)
                    .put("sha256", e.sha256),
            )
        }
        return JSONObject().put("models", models).put("benchmark_image", STILL_ASSET)
    }

    private fun writeText(file: File, text: String) {
        file.parentFile.mkdirs()
        file.writeText(text)
    }
}
