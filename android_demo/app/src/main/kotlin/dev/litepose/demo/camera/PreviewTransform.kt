package dev.litepose.demo.camera

import android.graphics.Matrix
import dev.litepose.posecore.ScaleMode
import kotlin.math.max
import kotlin.math.min

/**
 * The TextureView matrix that shows the camera preview upright with the same fit/fill as the overlay.
 *
 * The camera's SurfaceTexture transform already turns the buffer upright for the device's natural orientation
 * (and mirrors the front camera); TextureView then stretches it over the view. This matrix undoes the stretch,
 * turns the image against the display rotation and scales it uniformly (FIT: all visible, FILL: view covered),
 * centred, exactly like posecore's ViewTransform does for the keypoints.
 */
object PreviewTransform {
    fun matrix(
        viewW: Int, viewH: Int,
        preview: FrameSize, sensorOrientation: Int, displayDegrees: Int, mode: ScaleMode,
    ): Matrix {
        val m = Matrix()
        if (viewW <= 0 || viewH <= 0) return m
        val sideways = sensorOrientation % 180 == 90
        val naturalW = (if (sideways) preview.height else preview.width).toFloat()
        val naturalH = (if (sideways) preview.width else preview.height).toFloat()
        val turned = displayDegrees % 180 == 90
        val uprightW = if (turned) naturalH else naturalW
        val uprightH = if (turned) naturalW else naturalH
        val cx = viewW / 2f
        val cy = viewH / 2f
        m.setScale(naturalW / viewW, naturalH / viewH, cx, cy) // undo the stretch: natural pixels around the centre
        m.postRotate(-displayDegrees.toFloat(), cx, cy)
        val scale = when (mode) {
            ScaleMode.FIT -> min(viewW / uprightW, viewH / uprightH)
            ScaleMode.FILL -> max(viewW / uprightW, viewH / uprightH)
        }
        m.postScale(scale, scale, cx, cy)
        return m
    }
}
