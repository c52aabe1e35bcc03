package dev.litepose.demo.camera

import java.nio.ByteBuffer

/** One plane of a YUV_420_888 frame, as `android.media.Image.Plane` describes it, without Android types. */
class YuvPlane(val buffer: ByteBuffer, val rowStride: Int, val pixelStride: Int)

/**
 * YUV_420_888 (any plane layout: I420, NV12, NV21, padded rows) -> row-major opaque ARGB, the frame format of
 * posecore's `PosePipeline`. Camera YUV uses the JFIF colour space (BT.601 matrix, full 0..255 range):
 * `R = Y + 1.402 V'`, `G = Y - 0.344136 U' - 0.714136 V'`, `B = Y + 1.772 U'` with `U' = U - 128`, `V' = V - 128`,
 * evaluated in 16.16 fixed point (`(x + 2^15) shr 16` rounds half up), clamped to 0..255.
 */
object YuvToArgb {
    private const val R_V = 91881 // 1.402 * 65536
    private const val G_U = 22554 // 0.344136 * 65536
    private const val G_V = 46802 // 0.714136 * 65536
    private const val B_U = 116130 // 1.772 * 65536
    private const val HALF = 1 shl 15

    /**
     * Converts the `width × height` window at (`left`, `top`) of a frame (the image's crop rectangle; chroma from
     * the 2×2 block each pixel lies in) into `out` (size >= width * height); absolute reads, buffers untouched.
     */
    fun convert(width: Int, height: Int, y: YuvPlane, u: YuvPlane, v: YuvPlane, out: IntArray, left: Int = 0, top: Int = 0) {
        require(width > 0 && height > 0) { "empty frame ${width}x$height" }
        require(left >= 0 && top >= 0) { "crop origin ($left, $top) is outside the frame" }
        require(out.size >= width * height) { "output holds ${out.size} pixels, need ${width * height}" }
        val yBuf = y.buffer
        val uBuf = u.buffer
        val vBuf = v.buffer
        for (row in 0 until height) {
            val yRow = (top + row) * y.rowStride
            val uRow = ((top + row) shr 1) * u.rowStride
            val vRow = ((top + row) shr 1) * v.rowStride
            val outRow = row * width
            for (col in 0 until width) {
                val x = left + col
                val luma = yBuf.get(yRow + x * y.pixelStride).toInt() and 0xff
                val cb = (uBuf.get(uRow + (x shr 1) * u.pixelStride).toInt() and 0xff) - 128
                val cr = (vBuf.get(vRow + (x shr 1) * v.pixelStride).toInt() and 0xff) - 128
                val r = luma + ((R_V * cr + HALF) shr 16)
                val g = luma - ((G_U * cb + G_V * cr + HALF) shr 16)
                val b = luma + ((B_U * cb + HALF) shr 16)
                out[outRow + col] = (0xff shl 24) or (clamp(r) shl 16) or (clamp(g) shl 8) or clamp(b)
            }
        }
    }

    private fun clamp(v: Int): Int = if (v < 0) 0 else if (v > 255) 255 else v
}
