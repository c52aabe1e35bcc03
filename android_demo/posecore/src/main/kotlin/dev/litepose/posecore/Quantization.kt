package dev.litepose.posecore

import java.nio.ByteBuffer

/**
 * Affine tensor quantisation of a TFLite tensor: `real = scale * (q - zeroPoint)`.
 *
 * Computed in float32 as `scale * (q - zp).toFloat()`, exactly as python_ref dequantises, so INT8
 * outputs give bit-identical float inputs to both decoders.
 */
data class Quantization(val scale: Float, val zeroPoint: Int) {
    init {
        require(scale.isFinite() && scale > 0f) { "quantisation scale must be finite and > 0, got $scale" }
    }

    /** Dequantises uint8 (`signed = false`) or int8 (`signed = true`) bytes. */
    fun dequantize(data: ByteArray, signed: Boolean): FloatArray {
        val out = FloatArray(data.size)
        for (k in data.indices) out[k] = real(data[k], signed)
        return out
    }

    /** Dequantises `out.size` bytes from `buffer`'s position (advancing it) into `out`; no allocation. */
    fun dequantize(buffer: ByteBuffer, signed: Boolean, out: FloatArray) {
        require(buffer.remaining() >= out.size) { "buffer has ${buffer.remaining()} bytes, need ${out.size}" }
        for (k in out.indices) out[k] = real(buffer.get(), signed)
    }

    private fun real(b: Byte, signed: Boolean): Float {
        val q = if (signed) b.toInt() else b.toInt() and 0xff
        return scale * (q - zeroPoint).toFloat()
    }
}
