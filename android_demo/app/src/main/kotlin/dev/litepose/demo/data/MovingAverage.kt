package dev.litepose.demo.data

/** Mean of the last [window] values (ring buffer, O(1) per value); NaN until the first value. */
class MovingAverage(val window: Int) {
    init {
        require(window >= 1) { "window must be >= 1, got $window" }
    }

    private val values = DoubleArray(window)
    private var next = 0
    private var sum = 0.0

    /** Number of values in the window (<= [window]). */
    var count = 0
        private set

    val mean: Double get() = if (count == 0) Double.NaN else sum / count

    fun add(value: Double) {
        require(value.isFinite()) { "value must be finite, got $value" }
        if (count == window) sum -= values[next] else count++
        values[next] = value
        sum += value
        next = (next + 1) % window
    }

    fun clear() {
        count = 0
        next = 0
        sum = 0.0
    }
}

/**
 * Frames per second over the last [window] frame timestamps: `(n - 1) / (t_last - t_first)`. A moving average
 * of the frame rate that reacts within [window] frames and is not fooled by a single slow frame.
 */
class FpsMeter(val window: Int = 30) {
    init {
        require(window >= 2) { "window must be >= 2, got $window" }
    }

    private val stamps = LongArray(window)
    private var next = 0
    private var count = 0

    /** Records a frame finished at `nanos` (monotonic clock, e.g. System.nanoTime). */
    fun tick(nanos: Long) {
        if (count > 0) {
            val last = stamps[(next - 1 + window) % window]
            require(nanos >= last) { "timestamps must not go backwards: $nanos after $last" }
        }
        stamps[next] = nanos
        next = (next + 1) % window
        if (count < window) count++
    }

    /** NaN until two frames were seen. */
    val fps: Double
        get() {
            if (count < 2) return Double.NaN
            val first = stamps[if (count < window) 0 else next]
            val last = stamps[(next - 1 + window) % window]
            return if (last == first) Double.NaN else (count - 1) * 1e9 / (last - first)
        }

    fun clear() {
        count = 0
        next = 0
    }
}
