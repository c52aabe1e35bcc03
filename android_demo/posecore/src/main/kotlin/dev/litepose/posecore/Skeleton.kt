package dev.litepose.posecore

/**
 * Joint names and visualisation edges (0-based joint indices) of the two supported keypoint sets.
 *
 * CrowdPose: `crowd_pose_part_orders` of the official LitePose code (15 edges).
 * COCO: `coco_part_orders` (19 edges; the same set as the COCO person category's `skeleton`).
 * Same lists and order as python_ref.keypoints.
 */
enum class Skeleton(val jointNames: List<String>, val edges: List<Pair<Int, Int>>) {
    CROWDPOSE(
        listOf(
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
        ),
        listOf(
            12 to 13, 13 to 0, 13 to 1, 0 to 1, 0 to 6, 1 to 7, 6 to 7, 0 to 2,
            2 to 4, 1 to 3, 3 to 5, 6 to 8, 8 to 10, 7 to 9, 9 to 11,
        ),
    ),
    COCO(
        listOf(
            "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
            "left_knee", "right_knee", "left_ankle", "right_ankle",
        ),
        listOf(
            0 to 1, 1 to 2, 2 to 0, 1 to 3, 2 to 4, 3 to 5, 4 to 6, 5 to 6, 5 to 11, 6 to 12,
            11 to 12, 5 to 7, 7 to 9, 6 to 8, 8 to 10, 11 to 13, 13 to 15, 12 to 14, 14 to 16,
        ),
    );

    val joints: Int get() = jointNames.size

    /** Edges of `person` whose both ends are detected with a value above `minScore`. */
    fun visibleEdges(person: Person, minScore: Float = 0f): List<Pair<Int, Int>> {
        require(person.keypoints.size == joints) { "person has ${person.keypoints.size} joints, $name has $joints" }
        return edges.filter { (a, b) ->
            person.keypoints[a].score > minScore && person.keypoints[b].score > minScore
        }
    }

    companion object {
        /** The skeleton of a model with `joints` outputs (14 CrowdPose, 17 COCO). */
        fun forJoints(joints: Int): Skeleton =
            entries.firstOrNull { it.joints == joints }
                ?: throw IllegalArgumentException("no skeleton for $joints joints (14 = CrowdPose, 17 = COCO)")
    }
}

/**
 * Per-person colours as opaque ARGB ints, the same as python_ref.draw.person_colours: golden-ratio
 * hue steps from 0.13, saturation 0.9, value 1.0, channels rounded half-to-even like Python's round().
 */
object PoseColors {
    private const val GOLDEN = 0.618033988749895

    /** Colour of the person at `index` (decoder order). */
    fun personColor(index: Int): Int {
        require(index >= 0) { "person index must be >= 0, got $index" }
        val hue = (0.13 + index * GOLDEN) % 1.0
        val (r, g, b) = hsvToRgb(hue, 0.9, 1.0)
        return (0xFF shl 24) or (channel(r) shl 16) or (channel(g) shl 8) or channel(b)
    }

    private fun channel(v: Double): Int = Math.rint(v * 255).toInt()

    /** colorsys.hsv_to_rgb. */
    private fun hsvToRgb(h: Double, s: Double, v: Double): Triple<Double, Double, Double> {
        if (s == 0.0) return Triple(v, v, v)
        val i = (h * 6.0).toInt()
        val f = h * 6.0 - i
        val p = v * (1.0 - s)
        val q = v * (1.0 - s * f)
        val t = v * (1.0 - s * (1.0 - f))
        return when (i % 6) {
            0 -> Triple(v, t, p)
            1 -> Triple(q, v, p)
            2 -> Triple(p, v, t)
            3 -> Triple(p, q, v)
            4 -> Triple(t, p, v)
            else -> Triple(v, p, q)
        }
    }
}
