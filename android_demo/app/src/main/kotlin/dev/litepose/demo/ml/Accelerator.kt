package dev.litepose.demo.ml

/** Where the interpreter runs. NNAPI is left out on purpose: it is deprecated since Android 15. */
enum class Accelerator(val label: String) {
    /** LiteRT's CPU kernels with the XNNPACK delegate, `threads` threads. */
    CPU("CPU (XNNPACK)"),

    /** The LiteRT GPU delegate (OpenCL / OpenGL ES); falls back to CPU when the device or model cannot use it. */
    GPU("GPU"),
}

/**
 * What the interpreter actually uses, and why if it is not what was asked for.
 *
 * @property fallbackReason null when [used] == [requested]; else the reason, shown to the user.
 */
data class AcceleratorStatus(val requested: Accelerator, val used: Accelerator, val threads: Int, val fallbackReason: String?) {
    val isFallback: Boolean get() = fallbackReason != null

    /** HUD text: "GPU", "CPU (XNNPACK) ×4", or "CPU (XNNPACK) ×4 — GPU not used: <reason>". */
    fun describe(): String {
        val base = if (used == Accelerator.CPU) "${used.label} ×$threads" else used.label
        return if (fallbackReason == null) base else "$base — ${requested.name} not used: $fallbackReason"
    }
}
