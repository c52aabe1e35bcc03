package dev.litepose.demo.camera

/**
 * How far (clockwise) a camera2 frame must be rotated to be upright on the screen, from the sensor orientation,
 * the display rotation and the lens facing. Same rule as CameraX's `ImageInfo.rotationDegrees`: a back camera
 * turns against the display rotation, a front camera (which looks the other way) with it.
 */
object FrameRotation {
    /** `Surface.ROTATION_0..ROTATION_270` (0..3) -> 0, 90, 180, 270 degrees. */
    fun displayDegrees(surfaceRotation: Int): Int {
        require(surfaceRotation in 0..3) { "Surface rotation must be 0..3, got $surfaceRotation" }
        return surfaceRotation * 90
    }

    /** Clockwise rotation (0/90/180/270) that makes the sensor frame upright for the current display rotation. */
    fun frameRotation(sensorOrientation: Int, displayDegrees: Int, frontFacing: Boolean): Int {
        require(sensorOrientation % 90 == 0 && sensorOrientation in 0..270) { "sensor orientation must be 0/90/180/270, got $sensorOrientation" }
        require(displayDegrees % 90 == 0 && displayDegrees in 0..270) { "display rotation must be 0/90/180/270, got $displayDegrees" }
        return if (frontFacing) (sensorOrientation + displayDegrees) % 360 else (sensorOrientation - displayDegrees + 360) % 360
    }
}
