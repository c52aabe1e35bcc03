package dev.litepose.demo.ui

import kotlin.math.roundToInt

/** Maps a SeekBar's integer progress 0..[steps] linearly onto [min]..[max] and back (nearest step). */
class Slider(val min: Double, val max: Double, val steps: Int) {
    init {
        require(max > min && steps >= 1) { "bad slider range $min..$max in $steps steps" }
    }

    fun value(progress: Int): Double = min + (max - min) * progress.coerceIn(0, steps) / steps

    fun progress(value: Double): Int = ((value - min) / (max - min) * steps).roundToInt().coerceIn(0, steps)
}
