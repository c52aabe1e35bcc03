package dev.litepose.posecore.bench

import dev.litepose.posecore.FastDecoder
import dev.litepose.posecore.Person
import dev.litepose.posecore.ReferenceDecoder
import java.io.File
import kotlin.math.exp
import kotlin.random.Random

/**
 * JVM micro-benchmark of [FastDecoder.decode] on synthetic LitePose-shaped outputs (448×448 input,
 * J = 14: heatmaps 112×112 and 224×224) with 1, 10 and 30 people (Gaussian joint blobs, one tag per
 * person, uniform background noise). Not a JUnit test (surefire runs *Test classes only).
 *
 *     mvn -q -f android_demo/posecore/pom.xml -Pbench test-compile exec:java [-Dbench.out=FILE]
 *
 * Each size is decoded `warmup` times first (enough for HotSpot's C2 to compile the hot loops, as in a
 * running app), then timed `runs` times. The previous, plain implementation ([ReferenceDecoder], the
 * test oracle) is timed the same way in the same run for comparison, and both must return bit-identical
 * people on every input. Writes JSON (min / median / p90 / mean ms per decoder and size; on a shared
 * machine the min is the stable one) to the first argument and prints it.
 */
fun main(args: Array<String>) {
    val out = File(args.getOrNull(0) ?: "decoder-bench.json")
    val inputH = 448
    val inputW = 448
    val joints = 14
    val warmup = 300
    val runs = 200
    val rows = ArrayList<String>()
    val decoders = listOf<Pair<String, (SyntheticOutputs) -> List<Person>>>(
        FastDecoder().let { d -> "FastDecoder" to { o -> d.decode(o.hm4, o.tags, o.hm2, o.h4, o.w4, joints) } },
        ReferenceDecoder().let { d ->
            "ReferenceDecoder (previous implementation)" to { o -> d.decode(o.hm4, o.tags, o.hm2, o.h4, o.w4, joints) }
        },
    )
    for (people in listOf(1, 10, 30)) {
        val o = SyntheticOutputs(inputH, inputW, joints, people, Random(1000 + people))
        val results = decoders.map { (_, decode) -> decode(o) }
        check(results.all { samePeople(it, results[0]) }) { "decoders disagree on $people people" }
        for ((name, decode) in decoders) {
            var found = 0
            var decoded = 0
            repeat(warmup) {
                val persons = decode(o)
                decoded = persons.size
                found = persons.count { it.score > 0.1f }
            }
            val times = DoubleArray(runs)
            for (r in 0 until runs) {
                val t0 = System.nanoTime()
                decode(o)
                times[r] = (System.nanoTime() - t0) / 1e6
            }
            times.sort()
            val median = times[runs / 2]
            val p90 = times[(runs * 9) / 10]
            val mean = times.average()
            val fastest = times[0]
            System.err.println(
                "$name people=$people found(score>0.1)=$found decoded=$decoded " +
                    "min=%.3f median=%.3f p90=%.3f mean=%.3f ms".format(fastest, median, p90, mean),
            )
            rows += """{"decoder": "$name", "people": $people, "found_score_gt_0.1": $found, "decoded": $decoded, """ +
                """"min_ms": ${"%.4f".format(fastest)}, "median_ms": ${"%.4f".format(median)}, """ +
                """"p90_ms": ${"%.4f".format(p90)}, "mean_ms": ${"%.4f".format(mean)}, "runs": $runs, "warmup": $warmup}"""
        }
    }
    val json = buildString {
        append("{\n  \"benchmark\": \"FastDecoder.decode\",\n")
        append("  \"input_hw\": [$inputH, $inputW], \"joints\": $joints, \"params\": \"defaults\",\n")
        append("  \"jvm\": \"${System.getProperty("java.vm.name")} ${System.getProperty("java.version")}\",\n")
        append("  \"os_arch\": \"${System.getProperty("os.arch")}\", \"cpus\": ${Runtime.getRuntime().availableProcessors()},\n")
        append("  \"results\": [\n    ")
        append(rows.joinToString(",\n    "))
        append("\n  ]\n}\n")
    }
    out.absoluteFile.parentFile.mkdirs()
    out.writeText(json)
    print(json)
}

/** Same people, every keypoint and score bit for bit. */
private fun samePeople(a: List<Person>, b: List<Person>): Boolean =
    a.size == b.size && a.indices.all { p ->
        a[p].score.toRawBits() == b[p].score.toRawBits() && a[p].keypoints.size == b[p].keypoints.size &&
            a[p].keypoints.indices.all { j ->
                val k = a[p].keypoints[j]
                val l = b[p].keypoints[j]
                k.x.toRawBits() == l.x.toRawBits() && k.y.toRawBits() == l.y.toRawBits() &&
                    k.score.toRawBits() == l.score.toRawBits()
            }
    }

/** Outputs with `people` persons spread over the image, each joint a Gaussian blob, tags per person. */
private class SyntheticOutputs(inputH: Int, inputW: Int, val joints: Int, people: Int, rnd: Random) {
    val h4 = inputH / 4
    val w4 = inputW / 4
    val hm4 = FloatArray(h4 * w4 * joints) { rnd.nextFloat() * 0.02f }
    val tags = FloatArray(h4 * w4 * joints) { rnd.nextFloat() * 0.1f }
    val hm2 = FloatArray(4 * h4 * w4 * joints) { rnd.nextFloat() * 0.02f }

    init {
        for (p in 0 until people) {
            val cx = rnd.nextDouble(0.1, 0.9) * inputW
            val cy = rnd.nextDouble(0.1, 0.9) * inputH
            val tag = p * 2.0f
            for (j in 0 until joints) {
                val x = (cx + rnd.nextDouble(-40.0, 40.0)).coerceIn(0.0, inputW - 1.0)
                val y = (cy + rnd.nextDouble(-60.0, 60.0)).coerceIn(0.0, inputH - 1.0)
                val peak = rnd.nextDouble(0.4, 1.0)
                splat(hm4, h4, w4, 4, j, x, y, peak) { idx, _ -> tags[idx] = tag }
                splat(hm2, 2 * h4, 2 * w4, 2, j, x, y, peak) { _, _ -> }
            }
        }
    }

    private inline fun splat(
        map: FloatArray, h: Int, w: Int, stride: Int, j: Int, x: Double, y: Double, peak: Double,
        onCell: (Int, Double) -> Unit,
    ) {
        val sigma = 1.5 * stride
        val r = 3
        val gx = (x / stride).toInt()
        val gy = (y / stride).toInt()
        for (yy in maxOf(0, gy - r)..minOf(h - 1, gy + r)) for (xx in maxOf(0, gx - r)..minOf(w - 1, gx + r)) {
            val dx = (xx + 0.5) * stride - x
            val dy = (yy + 0.5) * stride - y
            val g = peak * exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
            val idx = (yy * w + xx) * joints + j
            map[idx] = maxOf(map[idx], g.toFloat())
            onCell(idx, g)
        }
    }
}
