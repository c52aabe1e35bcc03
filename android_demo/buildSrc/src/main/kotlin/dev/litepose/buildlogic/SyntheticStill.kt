package dev.litepose.buildlogic

import kotlin.math.max
import kotlin.math.min
import kotlin.math.sqrt

/**
 * The benchmark still: a deterministic synthetic RGB image (sky-to-ground gradient with three stick figures),
 * generated at build time so nothing third-party is bundled. It is for timing, not for accuracy.
 */
object SyntheticStill {
    /** Row-major RGB bytes (3 per pixel). */
    fun render(width: Int, height: Int): ByteArray {
        require(width > 0 && height > 0) { "empty still ${width}x$height" }
        val rgb = ByteArray(width * height * 3)
        for (y in 0 until height) {
            val t = y.toFloat() / max(1, height - 1)
            val r = (90 + 100 * t).toInt()
            val g = (140 + 40 * t).toInt()
            val b = (220 - 150 * t).toInt()
            for (x in 0 until width) {
                val k = (y * width + x) * 3
                rgb[k] = r.toByte(); rgb[k + 1] = g.toByte(); rgb[k + 2] = b.toByte()
            }
        }
        val figures = listOf(0.25f to 0.9f, 0.5f to 0.75f, 0.75f to 0.85f)
        for ((k, figure) in figures.withIndex()) {
            drawFigure(rgb, width, height, figure.first * width, figure.second * height, 0.6f * height * figure.second, k)
        }
        return rgb
    }

    /** Binary PPM (P6, maxval 255) of [render]. */
    fun ppm(width: Int, height: Int): ByteArray =
        "P6\n$width $height\n255\n".toByteArray(Charsets.US_ASCII) + render(width, height)

    private fun drawFigure(rgb: ByteArray, w: Int, h: Int, cx: Float, footY: Float, size: Float, shade: Int) {
        val color = intArrayOf(40 + 60 * shade, 30, 60 + 50 * shade)
        val thick = size * 0.045f
        val hipY = footY - size * 0.45f
        val neckY = footY - size * 0.8f
        val segments = listOf(
            floatArrayOf(cx - size * 0.12f, footY, cx - size * 0.08f, hipY), // left leg
            floatArrayOf(cx + size * 0.12f, footY, cx + size * 0.08f, hipY), // right leg
            floatArrayOf(cx - size * 0.08f, hipY, cx + size * 0.08f, hipY),
            floatArrayOf(cx, hipY, cx, neckY), // torso
            floatArrayOf(cx - size * 0.16f, neckY, cx + size * 0.16f, neckY), // shoulders
            floatArrayOf(cx - size * 0.16f, neckY, cx - size * 0.24f, hipY), // left arm
            floatArrayOf(cx + size * 0.16f, neckY, cx + size * 0.3f, neckY - size * 0.2f), // right arm, raised
        )
        for (s in segments) fillSegment(rgb, w, h, s[0], s[1], s[2], s[3], thick, color)
        fillSegment(rgb, w, h, cx, neckY - size * 0.1f, cx, neckY - size * 0.1f, size * 0.08f, color) // head
    }

    /** Fills every pixel whose centre lies within `radius` of segment (x0, y0)-(x1, y1). */
    private fun fillSegment(rgb: ByteArray, w: Int, h: Int, x0: Float, y0: Float, x1: Float, y1: Float, radius: Float, color: IntArray) {
        val left = max(0, (min(x0, x1) - radius).toInt())
        val right = min(w - 1, (max(x0, x1) + radius).toInt() + 1)
        val top = max(0, (min(y0, y1) - radius).toInt())
        val bottom = min(h - 1, (max(y0, y1) + radius).toInt() + 1)
        val dx = x1 - x0
        val dy = y1 - y0
        val len2 = dx * dx + dy * dy
        for (y in top..bottom) {
            for (x in left..right) {
                val px = x + 0.5f
                val py = y + 0.5f
                val t = if (len2 == 0f) 0f else (((px - x0) * dx + (py - y0) * dy) / len2).coerceIn(0f, 1f)
                val ex = px - (x0 + t * dx)
                val ey = py - (y0 + t * dy)
                if (sqrt(ex * ex + ey * ey) <= radius) {
                    val k = (y * w + x) * 3
                    rgb[k] = color[0].toByte(); rgb[k + 1] = color[1].toByte(); rgb[k + 2] = color[2].toByte()
                }
            }
        }
    }
}
