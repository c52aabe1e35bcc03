package dev.litepose.posecore

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One golden case (GOLDEN_FORMAT.md) read from disk: its JSON, the three float32 outputs and its decoder parameters. */
class GoldenCase(val json: File) {
    val doc: Map<String, Any?> = MiniJson.parse(json.readText()).obj()
    val joints: Int = doc["joints"].int()
    private val outputs = doc["outputs"].obj()
    private val s4Shape = outputs["heatmaps_s4"].obj()["shape"].list().map { it.int() }
    val h4: Int = s4Shape[0]
    val w4: Int = s4Shape[1]
    val arrays: Map<String, FloatArray> = listOf("heatmaps_s4", "tags_s4", "heatmaps_s2").associateWith { name ->
        val spec = outputs[name].obj()
        val count = spec["shape"].list().map { it.int() }.fold(1) { a, b -> a * b }
        val bytes = File(json.parentFile, spec["file"] as String).readBytes()
        require(bytes.size == 4 * count) { "${json.name}: $name holds ${bytes.size} bytes, shape says $count floats" }
        FloatArray(count).also { ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(it) }
    }
    val params: DecoderParams = doc["decoder"].obj().let { d ->
        DecoderParams(
            detectionThreshold = d["detection_threshold"].num(),
            tagThreshold = d["tag_threshold"].num(),
            topK = d["top_k"].int(),
            maxNumPeople = d["max_num_people"].int(),
            nmsKernel = d["nms_kernel"].int(),
            adjust = d["adjust"] as Boolean,
            refine = d["refine"] as Boolean,
        )
    }
}
