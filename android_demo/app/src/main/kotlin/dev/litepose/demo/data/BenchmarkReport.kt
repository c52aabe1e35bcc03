package dev.litepose.demo.data

import dev.litepose.posecore.StageTimings
import org.json.JSONObject

/**
 * Result of one benchmark: the same still image through the whole pipeline `runs` times after `warmup`
 * untimed runs. Serialised as the JSON that goes to logcat and to a file.
 */
class BenchmarkReport(
    val model: String,
    val asset: String,
    val accelerator: String,
    val fallbackReason: String?,
    val threads: Int,
    val image: String,
    val imageWidth: Int,
    val imageHeight: Int,
    val warmup: Int,
    val timings: List<StageTimings>,
    val persons: Int,
    val device: Map<String, String>,
) {
    init {
        require(timings.isNotEmpty()) { "a benchmark needs at least one timed run" }
    }

    val pre: LatencySummary get() = LatencySummary.of(timings.map { it.preMs }.toDoubleArray())
    val infer: LatencySummary get() = LatencySummary.of(timings.map { it.inferMs }.toDoubleArray())
    val decode: LatencySummary get() = LatencySummary.of(timings.map { it.decodeMs }.toDoubleArray())
    val total: LatencySummary get() = LatencySummary.of(timings.map { it.totalMs }.toDoubleArray())

    fun toJson(): JSONObject {
        val deviceJson = JSONObject()
        for ((k, v) in device.toSortedMap()) deviceJson.put(k, v)
        return JSONObject()
            .put("model", model)
            .put("asset", asset)
            .put("accelerator", accelerator)
            .put("fallback_reason", fallbackReason ?: JSONObject.NULL)
            .put("threads", threads)
            .put("image", image)
            .put("image_size", "${imageHeight}x$imageWidth")
            .put("warmup_runs", warmup)
            .put("runs", timings.size)
            .put("persons", persons)
            .put(
                "latency_ms",
                JSONObject()
                    .put("pre", pre.toJson())
                    .put("infer", infer.toJson())
                    .put("decode", decode.toJson())
                    .put("total", total.toJson()),
            )
            .put("fps_mean", if (total.meanMs > 0) Math.round(1000.0 / total.meanMs * 100.0) / 100.0 else JSONObject.NULL)
            .put("device", deviceJson)
    }
}
