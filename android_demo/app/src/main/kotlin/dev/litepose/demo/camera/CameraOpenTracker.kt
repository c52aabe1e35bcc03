package dev.litepose.demo.camera

/**
 * Which camera open is the current one, so that callbacks of an older open (camera2 answers asynchronously)
 * can tell they are stale and close what they got instead of building a session on released surfaces.
 *
 * Every [begin] and [stop] starts a new generation; an open's callbacks carry the generation [begin] gave it.
 * Not thread-safe: [CameraSource] calls it under its lock.
 */
class CameraOpenTracker {
    private var generation = 0
    private var texture: Any? = null
    private var front = false

    /** True from [begin] until [stop] or [ended] of the current open. */
    var active = false
        private set

    /** True if `texture` with this lens is already open or opening: starting again would only restart it. */
    fun isOpenOrOpening(texture: Any, front: Boolean): Boolean = active && this.texture === texture && this.front == front

    /** A new open of `texture` with this lens; returns its generation. */
    fun begin(texture: Any, front: Boolean): Int {
        generation++
        this.texture = texture
        this.front = front
        active = true
        return generation
    }

    /** True if `generation` is the latest open (not replaced by another [begin], not [stop]ped). */
    fun isCurrent(generation: Int): Boolean = generation == this.generation

    /** The open of `generation` failed or lost its camera: the next start opens again. Stale generations are ignored. */
    fun ended(generation: Int) {
        if (generation != this.generation) return
        active = false
        texture = null
    }

    /** Every open so far becomes stale. */
    fun stop() {
        generation++
        active = false
        texture = null
    }
}
