package dev.litepose.posecore

import kotlin.math.floor
import kotlin.math.max
import kotlin.math.min

/*
 * Coordinate chain of the camera demo, all in continuous corner-convention pixels
 * (pixel (u, v) covers [u, u+1) × [v, v+1)), points (x, y):
 *
 *   camera frame (sensor orientation)
 *     --CameraTransform (rotate clockwise by rotationDegrees)--> upright image
 *     --Letterbox--> model input            (the decoder returns model-input pixels)
 *   upright image --ViewTransform (fit/fill, optional mirror)--> view (screen) pixels
 *
 * Mirroring is a display step: the model sees the true (unmirrored) upright image, so left/right joint
 * labels stay physically correct, and a front-camera preview that is shown mirrored gets a mirrored
 * overlay. Every transform has an exact inverse; the arithmetic is float64.
 */

/**
 * Deployed-mode letterbox (docs/design.md, python_ref.preprocess.Letterbox): the upright image
 * `srcW × srcH` is resized to `resizedW × resizedH`, keeping its aspect ratio, and centred at integer
 * offsets on a `dstW × dstH` model input filled with the ImageNet mean colour [FILL_RGB] (124, 116, 104).
 */
class Letterbox(val srcW: Int, val srcH: Int, val dstW: Int, val dstH: Int) {
    init {
        require(srcW > 0 && srcH > 0 && dstW > 0 && dstH > 0) { "empty size: image ${srcW}x$srcH, input ${dstW}x$dstH" }
    }

    /** s = min(W / w, H / h), float64. */
    val scale: Double = min(dstW.toDouble() / srcW, dstH.toDouble() / srcH)
    val resizedW: Int = min(dstW, max(1, floor(srcW * scale + 0.5).toInt()))
    val resizedH: Int = min(dstH, max(1, floor(srcH * scale + 0.5).toInt()))
    val offsetX: Int = (dstW - resizedW) / 2
    val offsetY: Int = (dstH - resizedH) / 2

    companion object {
        /**
         * Border colour: the ImageNet mean (0 after the model's normalisation), as python_ref's letterbox.
         * A black border makes the network see false peaks at the band edge (docs/int8.md).
         */
        val FILL_RGB: IntArray = intArrayOf(124, 116, 104)
    }

    /** Image pixels -> model-input pixels: `X = ox + x * nw / w`. */
    fun toModelX(x: Double): Double = offsetX + x * (resizedW.toDouble() / srcW)
    fun toModelY(y: Double): Double = offsetY + y * (resizedH.toDouble() / srcH)

    /** Model-input pixels -> image pixels: `x = (X - ox) * w / nw` (exact inverse of [toModelX]). */
    fun toImageX(x: Double): Double = (x - offsetX) * srcW / resizedW
    fun toImageY(y: Double): Double = (y - offsetY) * srcH / resizedH

    fun toModel(p: Point): Point = Point(toModelX(p.x.toDouble()).toFloat(), toModelY(p.y.toDouble()).toFloat())
    fun toImage(p: Point): Point = Point(toImageX(p.x.toDouble()).toFloat(), toImageY(p.y.toDouble()).toFloat())

    /** A decoded person (model-input pixels) in image pixels; undetected joints stay (0, 0, 0). */
    fun toImage(person: Person): Person = person.mapPoints { x, y -> toImage(Point(x, y)) }

    override fun toString(): String =
        "Letterbox(${srcW}x$srcH -> ${resizedW}x$resizedH at ($offsetX, $offsetY) in ${dstW}x$dstH)"
}

/**
 * Camera frame (sensor orientation, `frameW × frameH`) -> upright image: rotate clockwise by
 * `rotationDegrees` (0/90/180/270, CameraX `ImageInfo.rotationDegrees` / the Camera2 sensor
 * orientation combined with the display rotation).
 */
class CameraTransform(val frameW: Int, val frameH: Int, val rotationDegrees: Int) {
    init {
        require(frameW > 0 && frameH > 0) { "empty camera frame ${frameW}x$frameH" }
        require(rotationDegrees in ROTATIONS) { "rotationDegrees must be 0, 90, 180 or 270, got $rotationDegrees" }
    }

    val uprightW: Int = if (rotationDegrees % 180 == 0) frameW else frameH
    val uprightH: Int = if (rotationDegrees % 180 == 0) frameH else frameW

    /** Frame point -> upright point. 90°: (x, y) -> (H - y, x); 180°: (W - x, H - y); 270°: (y, W - x). */
    fun toUpright(p: Point): Point {
        val x = p.x.toDouble()
        val y = p.y.toDouble()
        return when (rotationDegrees) {
            0 -> p
            90 -> Point((frameH - y).toFloat(), x.toFloat())
            180 -> Point((frameW - x).toFloat(), (frameH - y).toFloat())
            else -> Point(y.toFloat(), (frameW - x).toFloat())
        }
    }

    /** Upright point -> frame point (inverse of [toUpright]). */
    fun toFrame(p: Point): Point {
        val x = p.x.toDouble()
        val y = p.y.toDouble()
        return when (rotationDegrees) {
            0 -> p
            90 -> Point(y.toFloat(), (frameH - x).toFloat())
            180 -> Point((frameW - x).toFloat(), (frameH - y).toFloat())
            else -> Point((frameW - y).toFloat(), x.toFloat())
        }
    }

    /**
     * Index in the frame's row-major pixel array of upright pixel (ux, uy) (pixel centres map onto
     * pixel centres, so the rotation is an exact permutation).
     */
    fun framePixelIndex(ux: Int, uy: Int): Int = when (rotationDegrees) {
        0 -> uy * frameW + ux
        90 -> (frameH - 1 - ux) * frameW + uy
        180 -> (frameH - 1 - uy) * frameW + (frameW - 1 - ux)
        else -> ux * frameW + (frameW - 1 - uy)
    }

    companion object {
        val ROTATIONS = setOf(0, 90, 180, 270)
    }
}

/** How the upright image is scaled into the view: whole image visible (FIT) or view covered, image cropped (FILL). */
enum class ScaleMode { FIT, FILL }

/**
 * Upright image `srcW × srcH` -> view `viewW × viewH`: uniform scale (min for FIT, max for FILL),
 * centred, then mirrored horizontally about the view centre if `mirror` (front-camera preview).
 */
class ViewTransform(
    val srcW: Int, val srcH: Int, val viewW: Int, val viewH: Int,
    val mode: ScaleMode = ScaleMode.FIT, val mirror: Boolean = false,
) {
    init {
        require(srcW > 0 && srcH > 0 && viewW > 0 && viewH > 0) { "empty size: image ${srcW}x$srcH, view ${viewW}x$viewH" }
    }

    val scale: Double = when (mode) {
        ScaleMode.FIT -> min(viewW.toDouble() / srcW, viewH.toDouble() / srcH)
        ScaleMode.FILL -> max(viewW.toDouble() / srcW, viewH.toDouble() / srcH)
    }
    val offsetX: Double = (viewW - srcW * scale) / 2
    val offsetY: Double = (viewH - srcH * scale) / 2

    fun toView(p: Point): Point {
        val vx = offsetX + p.x * scale
        val vy = offsetY + p.y * scale
        return Point((if (mirror) viewW - vx else vx).toFloat(), vy.toFloat())
    }

    fun toImage(p: Point): Point {
        val vx = if (mirror) viewW - p.x.toDouble() else p.x.toDouble()
        return Point(((vx - offsetX) / scale).toFloat(), ((p.y - offsetY) / scale).toFloat())
    }
}

/**
 * The whole chain for one camera configuration: frame -> upright -> model input, and model input ->
 * upright / view / frame for keypoints.
 */
class FrameGeometry(
    val camera: CameraTransform,
    modelW: Int,
    modelH: Int,
    viewW: Int,
    viewH: Int,
    mode: ScaleMode = ScaleMode.FIT,
    mirror: Boolean = false,
) {
    val letterbox = Letterbox(camera.uprightW, camera.uprightH, modelW, modelH)
    val view = ViewTransform(camera.uprightW, camera.uprightH, viewW, viewH, mode, mirror)

    fun modelToView(p: Point): Point = view.toView(letterbox.toImage(p))
    fun viewToModel(p: Point): Point = letterbox.toModel(view.toImage(p))
    fun modelToFrame(p: Point): Point = camera.toFrame(letterbox.toImage(p))
    fun frameToModel(p: Point): Point = letterbox.toModel(camera.toUpright(p))

    /** A decoded person (model-input pixels) in view pixels; undetected joints stay (0, 0, 0). */
    fun personToView(person: Person): Person = person.mapPoints { x, y -> modelToView(Point(x, y)) }
}
