package dev.litepose.posecore

/**
 * One joint: position (x, y) and its detection value.
 *
 * Points are (x, y); maps are indexed [y, x]. Coordinates use the corner convention (pixel (u, v)
 * covers [u, u+1) × [v, v+1)); which pixel grid (model input, upright image, view) depends on who
 * returned it. `score == 0` means "not detected" (x and y are then 0 and meaningless).
 */
data class Keypoint(val x: Float, val y: Float, val score: Float) {
    val detected: Boolean get() = score > 0f
}

/** One person: J keypoints in joint-index order and the person score (mean of the J values, before refine). */
data class Person(val keypoints: List<Keypoint>, val score: Float) {
    /** The same person with every keypoint passed through `map` (scores kept). */
    fun mapPoints(map: (Float, Float) -> Point): Person =
        Person(keypoints.map { k -> if (k.detected) map(k.x, k.y).let { Keypoint(it.x, it.y, k.score) } else k }, score)
}

/** A 2-D point (x, y) in float32; used by the geometry transforms. */
data class Point(val x: Float, val y: Float)
