package dev.litepose.demo.data

/** An RGB image as row-major opaque ARGB pixels (the frame format of posecore's PosePipeline). */
class ArgbImage(val width: Int, val height: Int, val pixels: IntArray) {
    init {
        require(width > 0 && height > 0 && pixels.size == width * height) { "bad image ${width}x$height with ${pixels.size} pixels" }
    }
}

/**
 * Reader of binary PPM (P6, maxval 255), the format of the bundled benchmark still (written at build time by
 * buildSrc SyntheticStill). Decoding it needs no Bitmap, so it is the same on every device and in JVM tests.
 */
object Ppm {
    fun decode(bytes: ByteArray, name: String = "image"): ArgbImage {
        var pos = 0
        fun token(): String {
            while (pos < bytes.size) {
                val c = bytes[pos].toInt().toChar()
                when {
                    c == '#' -> while (pos < bytes.size && bytes[pos].toInt() != '\n'.code) pos++
                    c.isWhitespace() -> pos++
                    else -> break
                }
            }
            val start = pos
            while (pos < bytes.size && !bytes[pos].toInt().toChar().isWhitespace()) pos++
            require(pos > start) { "$name: truncated PPM header" }
            return String(bytes, start, pos - start, Charsets.US_ASCII)
        }
        require(token() == "P6") { "$name: not a binary PPM (P6)" }
        val width = token().toIntOrNull() ?: throw IllegalArgumentException("$name: bad PPM width")
        val height = token().toIntOrNull() ?: throw IllegalArgumentException("$name: bad PPM height")
        val maxval = token().toIntOrNull()
        require(width > 0 && height > 0) { "$name: empty PPM ${width}x$height" }
        require(maxval == 255) { "$name: only maxval 255 is supported, got $maxval" }
        pos++ // the single whitespace byte after maxval
        val need = width.toLong() * height * 3
        require(bytes.size - pos >= need) { "$name: pixel data truncated (${bytes.size - pos} of $need bytes)" }
        val pixels = IntArray(width * height) { k ->
            val o = pos + 3 * k
            (0xff shl 24) or ((bytes[o].toInt() and 0xff) shl 16) or ((bytes[o + 1].toInt() and 0xff) shl 8) or (bytes[o + 2].toInt() and 0xff)
        }
        return ArgbImage(width, height, pixels)
    }
}
