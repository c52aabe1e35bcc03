package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class LinearSumAssignmentTest {
    private fun vectors(): Map<String, Any?> {
        val text = javaClass.getResourceAsStream("/lsap_vectors.json")!!.bufferedReader().readText()
        return MiniJson.parse(text).obj()
    }

    @Test
    fun `matches SciPy on every generated case, ties included`() {
        val doc = vectors()
        val cases = doc["cases"].list()
        assertTrue(cases.size >= 200, "expected the full generated set, got ${cases.size}")
        for ((k, case) in cases.withIndex()) {
            val c = case.obj()
            val rows = c["rows"].int()
            val cols = c["cols"].int()
            val cost = c["cost"].list().map { it.num() }.toDoubleArray()
            val expected = c["col_for_row"].list().map { it.int() }.toIntArray()
            val got = LinearSumAssignment.solve(cost, rows, cols)
            assertArrayEquals(expected, got, "case $k (${rows}x$cols, SciPy ${doc["scipy_version"]}): cost=${cost.toList()}")
        }
    }

    @Test
    fun `constant matrix gives the identity, as SciPy`() {
        assertArrayEquals(intArrayOf(0, 1, 2), LinearSumAssignment.solve(DoubleArray(12) { 5.0 }, 3, 4))
    }

    @Test
    fun `hand-computed 3x3 optimum`() {
        // Rows pick (0->1, 1->0, 2->2): 1 + 2 + 2 = 5 is the unique minimum (brute force over 6 permutations).
        val cost = doubleArrayOf(4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0)
        assertArrayEquals(intArrayOf(1, 0, 2), LinearSumAssignment.solve(cost, 3, 3))
    }

    @Test
    fun `more rows than columns leaves rows unassigned`() {
        val cost = doubleArrayOf(5.0, 1.0, 2.0) // 3 rows, 1 column
        assertArrayEquals(intArrayOf(-1, 0, -1), LinearSumAssignment.solve(cost, 3, 1))
    }

    @Test
    fun `empty and invalid matrices`() {
        assertEquals(0, LinearSumAssignment.solve(DoubleArray(0), 0, 3).size)
        assertThrows<IllegalArgumentException> { LinearSumAssignment.solve(doubleArrayOf(1.0, Double.NaN), 1, 2) }
        assertThrows<IllegalArgumentException> { LinearSumAssignment.solve(doubleArrayOf(1.0, 2.0), 2, 2) }
    }
}
