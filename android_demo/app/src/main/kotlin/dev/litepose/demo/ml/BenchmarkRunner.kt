package dev.litepose.demo.ml

import android.content.Context
import android.os.Build
import android.util.Log
import dev.litepose.demo.data.ArgbImage
import dev.litepose.demo.data.BenchmarkReport
import dev.litepose.demo.data.Ppm
import dev.litepose.posecore.StageTimings
import java.io.File
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale

/**
 * Benchmark mode: the bundled still (assets/benchmark/still.ppm, synthetic, made at build time) through the
 * live pipeline of [PoseEngine] (same model, accelerator, threads and thresholds), N timed runs after a warm-up.
 * The JSON goes to logcat (tag [TAG]) and to `<app external files>/benchmarks/`. Run on the analysis thread.
 */
class BenchmarkRunner(private val context: Context, private val engine: PoseEngine) {
    /** Result: the report and the file it was written to. */
    class Outcome(val report: BenchmarkReport, val file: File)

    fun loadStill(): ArgbImage {
        val asset = engine.catalog.benchmarkImage
        val bytes = context.assets.open(asset).use { it.readBytes() }
        return Ppm.decode(bytes, "assets/$asset")
    }

    fun run(runs: Int, warmup: Int = WARMUP_RUNS): Outcome {
        require(runs >= 1) { "runs must be >= 1, got $runs" }
        val spec = engine.spec ?: throw IllegalStateException("no model loaded")
        val status = engine.status ?: throw IllegalStateException("no model loaded")
        val still = loadStill()
        repeat(warmup) { engine.process(still.pixels, still.width, still.height, 0) }
        val timings = ArrayList<StageTimings>(runs)
        var persons = 0
        repeat(runs) {
            val result = engine.process(still.pixels, still.width, still.height, 0)
            timings += result.timings
            persons = result.persons.size
        }
        val report = BenchmarkReport(
            model = spec.label,
            asset = spec.asset,
            accelerator = status.used.label,
            fallbackReason = status.fallbackReason,
            threads = status.threads,
            image = engine.catalog.benchmarkImage,
            imageWidth = still.width,
            imageHeight = still.height,
            warmup = warmup,
            timings = timings,
            persons = persons,
            device = mapOf(
                "manufacturer" to Build.MANUFACTURER,
                "model" to Build.MODEL,
                "sdk" to Build.VERSION.SDK_INT.toString(),
                "abi" to (Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown"),
            ),
        )
        val json = report.toJson().toString(2)
        Log.i(TAG, json)
        return Outcome(report, write(json))
    }

    /** Writes atomically (temp file + rename) so a half-written report never appears. */
    private fun write(json: String): File {
        val dir = File(context.getExternalFilesDir(null) ?: context.filesDir, "benchmarks")
        if (!dir.isDirectory && !dir.mkdirs()) throw IllegalStateException("$dir: cannot create the benchmark folder")
        val stamp = SimpleDateFormat("yyyyMMdd-HHmmss", Locale.US).format(Date())
        val target = File(dir, "benchmark-$stamp.json")
        val tmp = File(dir, ".${target.name}.tmp")
        tmp.writeText(json + "\n")
        if (!tmp.renameTo(target)) {
            tmp.delete()
            throw IllegalStateException("$target: cannot write the benchmark report")
        }
        return target
    }

    companion object {
        const val TAG = "LitePoseBenchmark"
        const val WARMUP_RUNS = 3
    }
}
