package dev.litepose.demo.ml

import org.json.JSONException
import org.json.JSONObject

/**
 * One bundled model, as listed in `assets/models/manifest.json` (written and verified at build time by
 * buildSrc ModelBundler).
 */
data class ModelSpec(
    val asset: String,
    val variant: String,
    val precision: String,
    val inputHeight: Int,
    val inputWidth: Int,
    val joints: Int,
    val sha256: String,
) {
    /** Picker label: variant, precision, input size H×W. */
    val label: String get() = "$variant $precision ${inputHeight}x$inputWidth"
}

/** The bundled models and the benchmark still, from the app's asset manifest. */
class ModelCatalog(val models: List<ModelSpec>, val benchmarkImage: String) {
    /** The model selected at start: the first int8 one (the fast one on phones), else the first listed. */
    val defaultModelIndex: Int get() = models.indexOfFirst { it.precision.equals("int8", ignoreCase = true) }.coerceAtLeast(0)

    companion object {
        const val MANIFEST_ASSET = "models/manifest.json"
        private val INPUT_SIZE = Regex("^([1-9][0-9]*)x([1-9][0-9]*)$")

        /** Parses the manifest text; errors name the asset and the field. */
        fun parse(json: String, name: String = "assets/$MANIFEST_ASSET"): ModelCatalog {
            val root = try {
                JSONObject(json)
            } catch (e: JSONException) {
                throw IllegalArgumentException("$name: not valid JSON (${e.message})")
            }
            val list = root.optJSONArray("models") ?: throw IllegalArgumentException("$name: no \"models\" list")
            require(list.length() > 0) { "$name: no models bundled" }
            val models = (0 until list.length()).map { k ->
                val item = list.optJSONObject(k) ?: throw IllegalArgumentException("$name: models[$k] is not an object")
                fun text(key: String): String = item.optString(key, "").ifEmpty {
                    throw IllegalArgumentException("$name: models[$k].$key is missing")
                }
                val size = INPUT_SIZE.matchEntire(text("input_size"))
                    ?: throw IllegalArgumentException("$name: models[$k].input_size must be HxW, got ${item.opt("input_size")}")
                val joints = item.optInt("joints", 0)
                require(joints > 0) { "$name: models[$k].joints must be a positive integer" }
                ModelSpec(
                    asset = text("asset"),
                    variant = text("variant"),
                    precision = text("precision"),
                    inputHeight = size.groupValues[1].toInt(),
                    inputWidth = size.groupValues[2].toInt(),
                    joints = joints,
                    sha256 = text("sha256"),
                )
            }
            return ModelCatalog(models, root.optString("benchmark_image", "").ifEmpty { throw IllegalArgumentException("$name: no benchmark_image") })
        }
    }
}
