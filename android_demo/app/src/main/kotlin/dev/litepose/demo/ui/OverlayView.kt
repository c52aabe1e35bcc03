package dev.litepose.demo.ui

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.view.View
import dev.litepose.posecore.Person
import dev.litepose.posecore.Point
import dev.litepose.posecore.PoseColors
import dev.litepose.posecore.ScaleMode
import dev.litepose.posecore.Skeleton
import dev.litepose.posecore.ViewTransform

/**
 * Draws the skeletons of one analysed frame over the preview, one colour per person, and the HUD.
 * Keypoints arrive in upright-image pixels; posecore's [ViewTransform] maps them to the view with the same
 * fit/fill as the preview and mirrors them for the front camera. Call the setters on the main thread.
 */
class OverlayView(context: Context) : View(context) {
    /** One analysed frame: persons in upright image pixels (`uprightW × uprightH`). */
    class Frame(val persons: List<Person>, val uprightW: Int, val uprightH: Int, val mirror: Boolean, val skeleton: Skeleton)

    private var frame: Frame? = null
    private var hud: List<String> = emptyList()
    private var messages: List<String> = emptyList()
    private var scaleMode = ScaleMode.FILL
    private var keypointThreshold = 0.1f
    private var hudLeft = 0f
    private var hudTop = 0f

    private val density = resources.displayMetrics.density
    private val bone = Paint(Paint.ANTI_ALIAS_FLAG).apply { strokeWidth = 4f * density; strokeCap = Paint.Cap.ROUND }
    private val joint = Paint(Paint.ANTI_ALIAS_FLAG).apply { style = Paint.Style.FILL }
    private val text = Paint(Paint.ANTI_ALIAS_FLAG).apply { color = Color.WHITE; textSize = 14f * density }
    private val warning = Paint(Paint.ANTI_ALIAS_FLAG).apply { color = Color.rgb(255, 200, 60); textSize = 14f * density }
    private val panel = Paint().apply { color = Color.argb(140, 0, 0, 0) }

    fun setFrame(frame: Frame?) {
        this.frame = frame
        invalidate()
    }

    fun setHud(lines: List<String>) {
        hud = lines
        invalidate()
    }

    /** Persistent notices under the HUD (camera off, GPU fallback...); empty clears them. */
    fun setMessages(lines: List<String>) {
        messages = lines
        invalidate()
    }

    /** Keeps the HUD and messages clear of the status bar and cutout (the window is edge-to-edge). */
    fun setHudInsets(left: Int, top: Int) {
        if (hudLeft == left.toFloat() && hudTop == top.toFloat()) return
        hudLeft = left.toFloat()
        hudTop = top.toFloat()
        invalidate()
    }

    fun setDrawing(mode: ScaleMode, keypointThreshold: Float) {
        scaleMode = mode
        this.keypointThreshold = keypointThreshold
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        frame?.let { drawPersons(canvas, it) }
        drawHud(canvas)
    }

    private fun drawPersons(canvas: Canvas, f: Frame) {
        if (width == 0 || height == 0) return
        val transform = ViewTransform(f.uprightW, f.uprightH, width, height, scaleMode, f.mirror)
        for ((index, person) in f.persons.withIndex()) {
            val color = PoseColors.personColor(index)
            bone.color = color
            joint.color = color
            val points = person.keypoints.map { transform.toView(Point(it.x, it.y)) }
            for ((a, b) in f.skeleton.visibleEdges(person, keypointThreshold)) {
                canvas.drawLine(points[a].x, points[a].y, points[b].x, points[b].y, bone)
            }
            for ((k, kp) in person.keypoints.withIndex()) {
                if (kp.score > keypointThreshold) canvas.drawCircle(points[k].x, points[k].y, 5f * density, joint)
            }
        }
    }

    private fun drawHud(canvas: Canvas) {
        val lines = hud + messages
        if (lines.isEmpty()) return
        val lineHeight = text.textSize * 1.3f
        val pad = 6f * density
        val widest = lines.maxOf { text.measureText(it) }
        // The dark box reaches the screen edge, behind the status bar; the text starts below it.
        canvas.drawRect(0f, 0f, hudLeft + widest + 2 * pad, hudTop + lines.size * lineHeight + 2 * pad, panel)
        for ((k, line) in lines.withIndex()) {
            val paint = if (k >= hud.size) warning else text
            canvas.drawText(line, hudLeft + pad, hudTop + pad + (k + 1) * lineHeight - text.descent(), paint)
        }
    }
}
