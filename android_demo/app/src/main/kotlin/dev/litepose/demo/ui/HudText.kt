package dev.litepose.demo.ui

/**
 * The heads-up display lines, from moving averages. Pure formatting, so the text is tested on the JVM.
 * NaN (nothing measured yet) shows as "–".
 */
object HudText {
    fun lines(
        fps: Double,
        preMs: Double,
        inferMs: Double,
        decodeMs: Double,
        people: Int,
        accelerator: String,
        model: String,
    ): List<String> = listOf(
        "FPS ${num(fps, 1)}   people $people",
        "pre ${num(preMs, 1)} ms   infer ${num(inferMs, 1)} ms   decode ${num(decodeMs, 1)} ms",
        "$model — $accelerator",
    )

    private fun num(v: Double, decimals: Int): String = if (v.isNaN()) "–" else "%.${decimals}f".format(v)
}
