package dev.litepose.posecore

import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.floor
import kotlin.math.min

/**
 * Fills a model input buffer from an ARGB camera frame in one pass: rotate to upright
 * ([CameraTransform]), resize with bilinear half-pixel-centre sampling (edge clamp, like
 * `cv2.INTER_LINEAR`, no antialiasing) into the letterbox rectangle, [Letterbox.FILL_RGB] elsewhere.
 *
 * Integer inputs are written with `quantization` (null = the contract's for `inputType`): pixel value v is
 * stored as `round(v / scale) + zeroPoint`, clamped to the type's range.
 *
 * Not bit-identical to OpenCV's fixed-point uint8 resize (±1 grey level); the golden tests therefore start
 * from the model outputs, not from images.
 */
class InputWriter(
    val camera: CameraTransform,
    val letterbox: Letterbox,
    val inputType: InputType,
    quantization: Quantization? = null,
) {
    init {
        require(letterbox.srcW == camera.uprightW && letterbox.srcH == camera.uprightH) {
            "letterbox source ${letterbox.srcW}x${letterbox.srcH} is not the upright frame ${camera.uprightW}x${camera.uprightH}"
        }
        quantization?.let { inputType.checkWritable(it) }
    }

    /** Non-null only when it differs from the contract's, so the standard models keep the plain byte path. */
    private val customQuantization: Quantization? = quantization?.takeIf { it != inputType.standardQuantization }

    val bufferSize: Int = letterbox.dstW * letterbox.dstH * 3 * inputType.bytesPerChannel

    /** A direct buffer of the right size and native order, reusable across frames. */
    fun allocate(): ByteBuffer = ByteBuffer.allocateDirect(bufferSize).order(ByteOrder.nativeOrder())

    // Per output column / row: the two upright source indices and the weight of the second.
    private val col0 = IntArray(letterbox.resizedW)
    private val col1 = IntArray(letterbox.resizedW)
    private val colW = FloatArray(letterbox.resizedW)
    private val row0 = IntArray(letterbox.resizedH)
    private val row1 = IntArray(letterbox.resizedH)
    private val rowW = FloatArray(letterbox.resizedH)

    init {
        taps(letterbox.srcW, letterbox.resizedW, col0, col1, colW)
        taps(letterbox.srcH, letterbox.resizedH, row0, row1, rowW)
    }

    /**
     * Writes the model input for `frame` (row-major ARGB, `camera.frameW × camera.frameH`) into `out`
     * from position 0 and rewinds it.
     */
    fun write(frame: IntArray, out: ByteBuffer) {
        require(frame.size == camera.frameW * camera.frameH) {
            "frame has ${frame.size} pixels, expected ${camera.frameW}x${camera.frameH}"
        }
        require(out.capacity() >= bufferSize) { "input buffer holds ${out.capacity()} bytes, need $bufferSize" }
        out.order(ByteOrder.nativeOrder())
        out.clear()
        val lb = letterbox
        for (y in 0 until lb.dstH) {
            val ry = y - lb.offsetY
            for (x in 0 until lb.dstW) {
                val rx = x - lb.offsetX
                if (ry < 0 || ry >= lb.resizedH || rx < 0 || rx >= lb.resizedW) {
                    put(out, FILL_R, FILL_G, FILL_B)
                    continue
                }
                val p00 = frame[camera.framePixelIndex(col0[rx], row0[ry])]
                val p01 = frame[camera.framePixelIndex(col1[rx], row0[ry])]
                val p10 = frame[camera.framePixelIndex(col0[rx], row1[ry])]
                val p11 = frame[camera.framePixelIndex(col1[rx], row1[ry])]
                val wx = colW[rx]
                val wy = rowW[ry]
                put(
                    out,
                    bilinear(p00, p01, p10, p11, 16, wx, wy),
                    bilinear(p00, p01, p10, p11, 8, wx, wy),
                    bilinear(p00, p01, p10, p11, 0, wx, wy),
                )
            }
        }
        out.rewind()
    }

    private fun put(out: ByteBuffer, r: Float, g: Float, b: Float) {
        val q = customQuantization
        if (q != null) {
            out.put(quantize(r, q)); out.put(quantize(g, q)); out.put(quantize(b, q))
            return
        }
        when (inputType) {
            InputType.FLOAT32 -> { out.putFloat(r); out.putFloat(g); out.putFloat(b) }
            InputType.UINT8 -> { out.put(toByte(r, 0)); out.put(toByte(g, 0)); out.put(toByte(b, 0)) }
            InputType.INT8 -> { out.put(toByte(r, -128)); out.put(toByte(g, -128)); out.put(toByte(b, -128)) }
        }
    }

    companion object {
        private val FILL_R = Letterbox.FILL_RGB[0].toFloat()
        private val FILL_G = Letterbox.FILL_RGB[1].toFloat()
        private val FILL_B = Letterbox.FILL_RGB[2].toFloat()

        /** Half-pixel-centre source taps for resizing `src` samples to `dst`: src = (d + 0.5) * src/dst - 0.5, clamped. */
        internal fun taps(src: Int, dst: Int, i0: IntArray, i1: IntArray, w1: FloatArray) {
            val ratio = src.toDouble() / dst
            for (d in 0 until dst) {
                val s = ((d + 0.5) * ratio - 0.5).coerceIn(0.0, (src - 1).toDouble())
                val f = floor(s).toInt()
                i0[d] = f
                i1[d] = min(f + 1, src - 1)
                w1[d] = (s - f).toFloat()
            }
        }

        private fun channel(argb: Int, shift: Int): Float = ((argb shr shift) and 0xff).toFloat()

        private fun bilinear(p00: Int, p01: Int, p10: Int, p11: Int, shift: Int, wx: Float, wy: Float): Float {
            val top = channel(p00, shift) + (channel(p01, shift) - channel(p00, shift)) * wx
            val bottom = channel(p10, shift) + (channel(p11, shift) - channel(p10, shift)) * wx
            return top + (bottom - top) * wy
        }

        private fun toByte(v: Float, zeroPoint: Int): Byte =
            (floor(v + 0.5f).toInt().coerceIn(0, 255) + zeroPoint).toByte()
    }

    /** v >= 0, so rounding half up is TFLite's round-half-away-from-zero. */
    private fun quantize(v: Float, q: Quantization): Byte =
        (floor(v / q.scale + 0.5f).toInt() + q.zeroPoint).coerceIn(inputType.storedRange).toByte()
}
