package dev.litepose.posecore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import kotlin.random.Random

class GeometryTest {
    private fun assertPoint(ex: Double, ey: Double, p: Point, tol: Double = 1e-4, what: String = "") {
        assertEquals(ex, p.x.toDouble(), tol, "$what x of $p")
        assertEquals(ey, p.y.toDouble(), tol, "$what y of $p")
    }

    @Test
    fun `letterbox 640x480 into 640x448 - hand-computed`() {
        // s = min(640/640, 448/480) = 0.93333; nw = floor(597.33 + 0.5) = 597, nh = 448; ox = 43 // 2 = 21.
        val lb = Letterbox(640, 480, 640, 448)
        assertEquals(597, lb.resizedW); assertEquals(448, lb.resizedH)
        assertEquals(21, lb.offsetX); assertEquals(0, lb.offsetY)
        assertPoint(21.0, 0.0, lb.toModel(Point(0f, 0f)))
        assertPoint(618.0, 448.0, lb.toModel(Point(640f, 480f)))
        assertPoint(320.0, 240.0, lb.toImage(Point(21f + 298.5f, 224f)))
    }

    @Test
    fun `letterbox portrait 480x640 into 448x704 and an upscale`() {
        // s = min(448/480, 704/640) = 0.93333; nw = 448, nh = floor(597.33 + 0.5) = 597; oy = 107 // 2 = 53.
        val lb = Letterbox(480, 640, 448, 704)
        assertEquals(448, lb.resizedW); assertEquals(597, lb.resizedH)
        assertEquals(0, lb.offsetX); assertEquals(53, lb.offsetY)
        // 100x50 into 256x256: s = 2.56, nw = 256, nh = floor(128.5) = 128, oy = 64.
        val up = Letterbox(100, 50, 256, 256)
        assertEquals(128, up.resizedH); assertEquals(64, up.offsetY)
        assertPoint(128.0, 128.0, up.toModel(Point(50f, 25f)))
        assertThrows<IllegalArgumentException> { Letterbox(0, 10, 10, 10) }
    }

    @Test
    fun `letterbox round trip`() {
        val rnd = Random(3)
        repeat(200) {
            val lb = Letterbox(1 + rnd.nextInt(2000), 1 + rnd.nextInt(2000), 32 + rnd.nextInt(800), 32 + rnd.nextInt(800))
            val p = Point(rnd.nextFloat() * lb.srcW, rnd.nextFloat() * lb.srcH)
            val back = lb.toImage(lb.toModel(p))
            assertPoint(p.x.toDouble(), p.y.toDouble(), back, 1e-3 * maxOf(1.0, lb.srcW.toDouble() / lb.resizedW), "$lb")
        }
    }

    @Test
    fun `camera rotations - hand-computed`() {
        val p = Point(10f, 20f)
        val r0 = CameraTransform(640, 480, 0)
        assertPoint(10.0, 20.0, r0.toUpright(p))
        val r90 = CameraTransform(640, 480, 90)
        assertEquals(480, r90.uprightW); assertEquals(640, r90.uprightH)
        assertPoint(460.0, 10.0, r90.toUpright(p)) // (H - y, x)
        assertPoint(480.0, 0.0, r90.toUpright(Point(0f, 0f)), what = "top-left goes to top-right")
        assertPoint(630.0, 460.0, CameraTransform(640, 480, 180).toUpright(p))
        assertPoint(20.0, 630.0, CameraTransform(640, 480, 270).toUpright(p)) // (y, W - x)
        assertThrows<IllegalArgumentException> { CameraTransform(640, 480, 45) }
    }

    @Test
    fun `pixel index rotation agrees with the continuous transform at pixel centres`() {
        for (rot in listOf(0, 90, 180, 270)) {
            val cam = CameraTransform(5, 3, rot)
            for (uy in 0 until cam.uprightH) for (ux in 0 until cam.uprightW) {
                val f = cam.toFrame(Point(ux + 0.5f, uy + 0.5f))
                val expected = (f.y - 0.5f).toInt() * 5 + (f.x - 0.5f).toInt()
                assertEquals(expected, cam.framePixelIndex(ux, uy), "rotation $rot pixel ($ux, $uy)")
            }
        }
    }

    @Test
    fun `view fit and fill - hand-computed`() {
        // Upright 480x640 in a 1080x1920 view. FIT: scale 2.25, image 1080x1440 at y 240.
        val fit = ViewTransform(480, 640, 1080, 1920, ScaleMode.FIT)
        assertPoint(0.0, 240.0, fit.toView(Point(0f, 0f)))
        assertPoint(540.0, 960.0, fit.toView(Point(240f, 320f)))
        assertPoint(1080.0, 240.0, ViewTransform(480, 640, 1080, 1920, ScaleMode.FIT, mirror = true).toView(Point(0f, 0f)))
        // FILL: scale 3, image 1440x1920 at x -180.
        val fill = ViewTransform(480, 640, 1080, 1920, ScaleMode.FILL)
        assertPoint(-180.0, 0.0, fill.toView(Point(0f, 0f)))
        assertPoint(540.0, 960.0, fill.toView(Point(240f, 320f)))
        assertPoint(1080.0 - 120.0, 30.0, ViewTransform(480, 640, 1080, 1920, ScaleMode.FILL, true).toView(Point(100f, 10f)))
    }

    @Test
    fun `frame - model - view round trips for every rotation, mirror and mode`() {
        val rnd = Random(5)
        for (rot in listOf(0, 90, 180, 270)) for (mirror in listOf(false, true)) for (mode in ScaleMode.entries) {
            val g = FrameGeometry(CameraTransform(640, 480, rot), 448, 256, 1080, 2340, mode, mirror)
            repeat(50) {
                val frame = Point(rnd.nextFloat() * 640, rnd.nextFloat() * 480)
                val model = g.frameToModel(frame)
                assertPoint(frame.x.toDouble(), frame.y.toDouble(), g.modelToFrame(model), 2e-3, "rot $rot")
                val view = g.modelToView(model)
                val back = g.viewToModel(view)
                assertPoint(model.x.toDouble(), model.y.toDouble(), back, 1e-3, "rot $rot mirror $mirror $mode")
                // The view point is the upright point scaled, shifted and (maybe) mirrored.
                val upright = g.camera.toUpright(frame)
                val vx = g.view.offsetX + upright.x * g.view.scale
                assertEquals(if (mirror) 1080 - vx else vx, view.x.toDouble(), 0.02, "rot $rot mirror $mirror $mode")
                assertEquals(g.view.offsetY + upright.y * g.view.scale, view.y.toDouble(), 0.02)
            }
        }
    }

    @Test
    fun `persons map to the view, undetected joints stay zero`() {
        val g = FrameGeometry(CameraTransform(640, 480, 90), 448, 640, 480, 640)
        // Upright 480x640 into 448x640 model: s = min(448/480, 640/640) -> nw 448, nh 597, oy 21; view = upright.
        val person = Person(listOf(Keypoint(224f, 21f + 298.5f, 0.9f), Keypoint(0f, 0f, 0f)), 0.45f)
        val v = g.personToView(person)
        assertPoint(240.0, 320.0, Point(v.keypoints[0].x, v.keypoints[0].y), 1e-3)
        assertEquals(Keypoint(0f, 0f, 0f), v.keypoints[1])
        assertEquals(0.45f, v.score)
    }
}
