package dev.litepose.demo.ml

/** Which signature of a model to run (kept apart from LiteRT's classes so that it is unit-tested on the JVM). */
object SignatureChoice {
    /**
     * From each signature's (input names, output names): the first with input `input` and all of `outputs` (as
     * python_ref's runner chooses), else the first with a single input and those outputs; null if none fits.
     */
    fun pick(signatures: Map<String, Pair<List<String>, List<String>>>, input: String, outputs: List<String>): String? {
        val complete = signatures.filterValues { (_, names) -> names.containsAll(outputs) }
        return complete.entries.firstOrNull { input in it.value.first }?.key
            ?: complete.entries.firstOrNull { it.value.first.size == 1 }?.key
    }
}
