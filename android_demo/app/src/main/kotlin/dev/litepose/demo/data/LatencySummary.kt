package dev.litepose.demo.data

import org.json.JSONObject
import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.sqrt

/**
 * Summary of N latency samples in milliseconds. Percentiles interpolate linearly between order statistics
 * (numpy's default `linear` method), so the benchmark JSON compares directly with `litepose bench` numbers.
 */
data class LatencySummary(
    val count: Int,
    val meanMs: Double,
    val stdMs: Double,
    val minMs: Double,
    val medianMs: Double,
    val p90Ms: Double,
    val maxMs: Double,
) {
    fun toJson(): JSONObject = JSONObject()
        .put("count", count)
        .put("mean", round3(meanMs))
        .put("std", round3(stdMs))
        .put("min", round3(minMs))
        .put("median", round3(medianMs))
        .put("p90", round3(p90Ms))
        .put("max", round3(maxMs))

    companion object {
        fun of(samplesMs: DoubleArray): LatencySummary {
            require(samplesMs.isNotEmpty()) { "no latency samples" }
            require(samplesMs.all { it.isFinite() }) { "latency samples must be finite" }
            val sorted = samplesMs.sortedArray()
            val mean = sorted.sum() / sorted.size
            val variance = sorted.sumOf { (it - mean) * (it - mean) } / sorted.size
            return LatencySummary(
                sorted.size, mean, sqrt(variance), sorted.first(), percentile(sorted, 50.0), percentile(sorted, 90.0), sorted.last(),
            )
        }

        /** Linear-interpolation percentile of ascending `sorted` (numpy `method="linear"`). */
        fun percentile(sorted: DoubleArray, q: Double): Double {
            require(q in 0.0..100.0) { "percentile must be in 0..100, got $q" }
            val rank = q / 100.0 * (sorted.size - 1)
            val lo = floor(rank).toInt()
            val hi = ceil(rank).toInt()
            return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo)
        }

        private fun round3(v: Double): Double = Math.round(v * 1000.0) / 1000.0
    }
}
