package dev.litepose.posecore

/**
 * Minimum-cost assignment by the shortest augmenting path algorithm of Crouse (2016), following the
 * choices of SciPy's `linear_sum_assignment` so that ties resolve the same way (the decoder's costs
 * are rounded tag distances ×100 minus INT8-quantised values: exact ties are common).
 *
 * The SciPy (>= 1.6, checked against 1.17) choices reproduced here: the costs are used as given (no shift
 * by the minimum, which older SciPy did and which changes float64 rounding); rows are augmented in order 0..nr-1; each Dijkstra scan walks the not-yet-scanned columns in a list that
 * starts as (nc-1, ..., 1, 0) and loses its scanned entry by swap-with-last; in a scan the first column
 * with a strictly smaller path cost wins, and at an equal cost an unassigned column replaces the current
 * choice. With more rows than columns the problem is solved on the transpose.
 */
object LinearSumAssignment {
    /**
     * Solves `min sum cost[i, col[i]]` for a row-major `rows × cols` matrix.
     *
     * @return `colForRow` of length `rows`: the column of each row, or -1 for rows left unassigned
     *   (only when rows > cols).
     * @throws IllegalArgumentException on NaN or -inf entries, or when no finite assignment exists.
     */
    fun solve(cost: DoubleArray, rows: Int, cols: Int): IntArray {
        require(rows >= 0 && cols >= 0 && cost.size == rows * cols) {
            "cost has ${cost.size} entries, expected $rows x $cols"
        }
        if (rows == 0 || cols == 0) return IntArray(rows) { -1 }
        if (rows <= cols) return solveWide(cost, rows, cols)
        // Transpose: each column gets a row; report it from the row side.
        val transposed = DoubleArray(rows * cols)
        for (r in 0 until rows) for (c in 0 until cols) transposed[c * rows + r] = cost[r * cols + c]
        val rowForCol = solveWide(transposed, cols, rows)
        val colForRow = IntArray(rows) { -1 }
        for (c in 0 until cols) colForRow[rowForCol[c]] = c
        return colForRow
    }

    /** rows <= cols: every row gets a distinct column. */
    private fun solveWide(cost: DoubleArray, nr: Int, nc: Int): IntArray {
        for (c in cost) require(!c.isNaN() && c != Double.NEGATIVE_INFINITY) { "cost matrix has NaN or -inf entries" }

        val u = DoubleArray(nr)
        val v = DoubleArray(nc)
        val pathCost = DoubleArray(nc)
        val path = IntArray(nc) { -1 }
        val colForRow = IntArray(nr) { -1 }
        val rowForCol = IntArray(nc) { -1 }
        val scannedRow = BooleanArray(nr)
        val scannedCol = BooleanArray(nc)
        val remaining = IntArray(nc)

        for (curRow in 0 until nr) {
            // Dijkstra from curRow over the reduced costs until an unassigned column is reached.
            var numRemaining = nc
            for (k in 0 until nc) remaining[k] = nc - 1 - k
            scannedRow.fill(false)
            scannedCol.fill(false)
            pathCost.fill(Double.POSITIVE_INFINITY)
            var minVal = 0.0
            var i = curRow
            var sink = -1
            while (sink == -1) {
                var index = -1
                var lowest = Double.POSITIVE_INFINITY
                scannedRow[i] = true
                for (k in 0 until numRemaining) {
                    val j = remaining[k]
                    val reduced = minVal + cost[i * nc + j] - u[i] - v[j] // ((minVal + C) - u) - v, float64
                    if (reduced < pathCost[j]) {
                        path[j] = i
                        pathCost[j] = reduced
                    }
                    if (pathCost[j] < lowest || (pathCost[j] == lowest && rowForCol[j] == -1)) {
                        lowest = pathCost[j]
                        index = k
                    }
                }
                minVal = lowest
                require(minVal != Double.POSITIVE_INFINITY) { "cost matrix is infeasible" }
                val j = remaining[index]
                if (rowForCol[j] == -1) sink = j else i = rowForCol[j]
                scannedCol[j] = true
                numRemaining -= 1
                remaining[index] = remaining[numRemaining]
            }

            // Dual update.
            u[curRow] += minVal
            for (r in 0 until nr) {
                if (scannedRow[r] && r != curRow) u[r] += minVal - pathCost[colForRow[r]]
            }
            for (c in 0 until nc) {
                if (scannedCol[c]) v[c] -= minVal - pathCost[c]
            }

            // Augment along the path back to curRow.
            var j = sink
            while (true) {
                val r = path[j]
                rowForCol[j] = r
                val previous = colForRow[r]
                colForRow[r] = j
                j = previous
                if (r == curRow) break
            }
        }
        return colForRow
    }
}
