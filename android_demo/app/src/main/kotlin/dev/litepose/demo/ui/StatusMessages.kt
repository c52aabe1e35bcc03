package dev.litepose.demo.ui

import java.util.EnumMap

/**
 * The on-screen notices, one slot per source: a camera that works again clears the camera's notice without
 * touching the model's, and a model that loads clears only the model's. Main thread only.
 */
class StatusMessages {
    /** In display order: why the camera is off comes before what the model did. */
    enum class Source { PERMISSION, CAMERA, MODEL }

    private val bySource = EnumMap<Source, String>(Source::class.java)

    /** Sets one source's notice (null clears it); returns the lines to show now. */
    fun set(source: Source, text: String?): List<String> {
        if (text.isNullOrBlank()) bySource.remove(source) else bySource[source] = text
        return lines
    }

    val lines: List<String> get() = bySource.values.toList()
}
