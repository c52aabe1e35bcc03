package dev.litepose.demo

import android.Manifest
import android.app.Activity
import android.app.AlertDialog
import android.content.ActivityNotFoundException
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Rect
import android.graphics.SurfaceTexture
import android.hardware.display.DisplayManager
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.os.Handler
import android.os.HandlerThread
import android.os.Looper
import android.provider.Settings
import android.view.Gravity
import android.view.TextureView
import android.view.View
import android.view.ViewGroup
import android.view.WindowInsets
import android.widget.Button
import android.widget.FrameLayout
import android.widget.TextView
import android.widget.Toast
import dev.litepose.demo.camera.CameraSource
import dev.litepose.demo.camera.FrameRotation
import dev.litepose.demo.camera.PreviewTransform
import dev.litepose.demo.data.FpsMeter
import dev.litepose.demo.data.InferenceSettings
import dev.litepose.demo.data.MovingAverage
import dev.litepose.demo.ml.BenchmarkRunner
import dev.litepose.demo.ml.ModelCatalog
import dev.litepose.demo.ml.PoseEngine
import dev.litepose.demo.ui.CameraPermission
import dev.litepose.demo.ui.ControlPanel
import dev.litepose.demo.ui.HudText
import dev.litepose.demo.ui.OverlayView
import dev.litepose.demo.ui.StatusMessages
import dev.litepose.demo.ui.Texts
import dev.litepose.posecore.Skeleton

/**
 * Wires camera -> [PoseEngine] -> overlay. Threads: main (views), "camera" (camera2 callbacks) and "frames"
 * (draining the reader, YUV conversion), both in [CameraSource], and "analysis" (inference, decoding,
 * benchmark; the engine lives there).
 */
class MainActivity : Activity(), CameraSource.Listener, ControlPanel.Callbacks {
    private val mainHandler = Handler(Looper.getMainLooper())
    private lateinit var analysisThread: HandlerThread
    private lateinit var analysisHandler: Handler
    private lateinit var textureView: TextureView
    private lateinit var overlay: OverlayView
    private val messages = StatusMessages()
    private lateinit var panel: ControlPanel
    private lateinit var grantButton: Button
    private var camera: CameraSource? = null
    private var engine: PoseEngine? = null
    private var benchmark: BenchmarkRunner? = null
    private var cameraConfig: CameraSource.Config? = null
    private var frontCamera = false
    private var permissionAsked = false

    // Analysis-thread state.
    private var engineSettings: InferenceSettings? = null
    private var benchmarkRunning = false
    private val fps = FpsMeter(30)
    private val preMs = MovingAverage(30)
    private val inferMs = MovingAverage(30)
    private val decodeMs = MovingAverage(30)

    /** Latest settings from the panel (main thread); the analysis thread applies them before the next frame. */
    @Volatile private var wantedSettings = InferenceSettings()

    /** Display rotation in degrees, read on the analysis thread for every frame. */
    @Volatile private var displayDegrees = 0

    private val displayListener = object : DisplayManager.DisplayListener {
        override fun onDisplayAdded(displayId: Int) = Unit
        override fun onDisplayRemoved(displayId: Int) = Unit
        override fun onDisplayChanged(displayId: Int) = onRotationMaybeChanged()
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        analysisThread = HandlerThread("analysis").apply { start() }
        analysisHandler = Handler(analysisThread.looper)

        val root = FrameLayout(this)
        textureView = TextureView(this)
        textureView.keepScreenOn = true // only while this view is shown: the screen can sleep once the app is left
        overlay = OverlayView(this)
        root.addView(textureView, FrameLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, ViewGroup.LayoutParams.MATCH_PARENT))
        root.addView(overlay, FrameLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, ViewGroup.LayoutParams.MATCH_PARENT))
        grantButton = Button(this).apply {
            text = Texts.GRANT_CAMERA
            isAllCaps = false
            visibility = View.GONE
            setOnClickListener { onGrantTapped() }
        }
        root.addView(grantButton, FrameLayout.LayoutParams(ViewGroup.LayoutParams.WRAP_CONTENT, ViewGroup.LayoutParams.WRAP_CONTENT, Gravity.CENTER))
        // targetSdk 35+ draws edge-to-edge on Android 15+: keep the controls and texts off the bars and the cutout.
        root.setOnApplyWindowInsetsListener { _, insets ->
            val safe = safeInsets(insets)
            overlay.setHudInsets(safe.left, safe.top)
            if (::panel.isInitialized) panel.setPadding(safe.left, 0, safe.right, safe.bottom)
            insets
        }

        val catalog = try {
            ModelCatalog.parse(assets.open(ModelCatalog.MANIFEST_ASSET).use { it.readBytes().toString(Charsets.UTF_8) })
        } catch (e: Exception) {
            root.addView(TextView(this).apply { text = "${Texts.NO_MODELS}\n${e.message}"; gravity = Gravity.CENTER })
            setContentView(root)
            return
        }
        wantedSettings = InferenceSettings(modelIndex = catalog.defaultModelIndex)
        val poseEngine = PoseEngine(this, catalog)
        engine = poseEngine
        benchmark = BenchmarkRunner(this, poseEngine)
        panel = ControlPanel(this, catalog.models.map { it.label }, wantedSettings, this)
        root.addView(panel, FrameLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, ViewGroup.LayoutParams.WRAP_CONTENT, Gravity.BOTTOM))
        setContentView(root)
        overlay.setDrawing(wantedSettings.scaleMode, wantedSettings.keypointThreshold)
        camera = CameraSource(this, analysisHandler, this)
        textureView.surfaceTextureListener = object : TextureView.SurfaceTextureListener {
            override fun onSurfaceTextureAvailable(surface: SurfaceTexture, width: Int, height: Int) = startCameraIfAllowed()
            override fun onSurfaceTextureSizeChanged(surface: SurfaceTexture, width: Int, height: Int) = updatePreviewTransform()
            override fun onSurfaceTextureDestroyed(surface: SurfaceTexture): Boolean {
                camera?.stop() // the texture is released after this returns: no session may keep drawing into it
                return true
            }
            override fun onSurfaceTextureUpdated(surface: SurfaceTexture) = Unit
        }
        analysisHandler.post { applySettingsOnAnalysisThread() }
    }

    override fun onResume() {
        super.onResume()
        getSystemService(DisplayManager::class.java).registerDisplayListener(displayListener, mainHandler)
        displayDegrees = currentDisplayDegrees()
        if (textureView.isAvailable) startCameraIfAllowed()
    }

    override fun onPause() {
        getSystemService(DisplayManager::class.java).unregisterDisplayListener(displayListener)
        camera?.stop()
        super.onPause()
    }

    override fun onDestroy() {
        camera?.release()
        val poseEngine = engine
        analysisHandler.post { poseEngine?.close() }
        analysisThread.quitSafely()
        super.onDestroy()
    }

    private fun startCameraIfAllowed() {
        val source = camera ?: return
        val granted = checkSelfPermission(Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED
        when (CameraPermission.onCameraWanted(granted, permissionAsked)) {
            CameraPermission.Step.ASK -> {
                permissionAsked = true
                requestPermissions(arrayOf(Manifest.permission.CAMERA), CAMERA_REQUEST)
            }
            CameraPermission.Step.SHOW_GRANT_BUTTON -> showPermissionPrompt(true)
            CameraPermission.Step.START_CAMERA -> {
                showPermissionPrompt(false)
                val texture = textureView.surfaceTexture ?: return
                source.start(texture, frontCamera) // a no-op if this camera is already open or opening
            }
        }
    }

    override fun onRequestPermissionsResult(requestCode: Int, permissions: Array<out String>, grantResults: IntArray) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults)
        if (requestCode != CAMERA_REQUEST) return
        if (grantResults.firstOrNull() == PackageManager.PERMISSION_GRANTED) startCameraIfAllowed()
        else showPermissionPrompt(true)
    }

    private fun onGrantTapped() {
        when (CameraPermission.onGrantTapped(shouldShowRequestPermissionRationale(Manifest.permission.CAMERA))) {
            CameraPermission.GrantAction.ASK_AGAIN -> requestPermissions(arrayOf(Manifest.permission.CAMERA), CAMERA_REQUEST)
            CameraPermission.GrantAction.OPEN_SETTINGS -> openAppSettings()
        }
    }

    /** Android shows no dialog any more after a permanent refusal: only the app's settings page can grant it. */
    private fun openAppSettings() {
        val intent = Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", packageName, null))
        try {
            startActivity(intent)
        } catch (e: ActivityNotFoundException) {
            Toast.makeText(this, Texts.OPEN_SETTINGS_FAILED, Toast.LENGTH_LONG).show()
        }
    }

    /** The permission message and the grant button, shown together; hiding them clears only that message. */
    private fun showPermissionPrompt(show: Boolean) {
        grantButton.visibility = if (show) View.VISIBLE else View.GONE
        showMessage(StatusMessages.Source.PERMISSION, if (show) Texts.PERMISSION_NEEDED else null)
    }

    /** One notice per source (permission, camera, model): setting or clearing one leaves the others. Main thread. */
    private fun showMessage(source: StatusMessages.Source, text: String?) {
        overlay.setMessages(messages.set(source, text))
    }

    /** System bars and display cutout, in pixels from each window edge. */
    private fun safeInsets(insets: WindowInsets): Rect {
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.R) {
            val i = insets.getInsets(WindowInsets.Type.systemBars() or WindowInsets.Type.displayCutout())
            return Rect(i.left, i.top, i.right, i.bottom)
        }
        @Suppress("DEPRECATION") // the API 30 replacement is used above
        val bars = Rect(insets.systemWindowInsetLeft, insets.systemWindowInsetTop, insets.systemWindowInsetRight, insets.systemWindowInsetBottom)
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            insets.displayCutout?.let { c ->
                bars.set(
                    maxOf(bars.left, c.safeInsetLeft), maxOf(bars.top, c.safeInsetTop),
                    maxOf(bars.right, c.safeInsetRight), maxOf(bars.bottom, c.safeInsetBottom),
                )
            }
        }
        return bars
    }

    private fun currentDisplayDegrees(): Int {
        val rotation = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.R) {
            display?.rotation ?: 0
        } else {
            @Suppress("DEPRECATION")
            windowManager.defaultDisplay.rotation
        }
        return FrameRotation.displayDegrees(rotation)
    }

    private fun onRotationMaybeChanged() {
        val degrees = currentDisplayDegrees()
        if (degrees == displayDegrees) return
        displayDegrees = degrees
        updatePreviewTransform()
    }

    private fun updatePreviewTransform() {
        val config = cameraConfig ?: return
        textureView.setTransform(
            PreviewTransform.matrix(
                textureView.width, textureView.height, config.previewSize, config.sensorOrientation, displayDegrees, wantedSettings.scaleMode,
            ),
        )
    }

    // --- CameraSource.Listener ---

    override fun onCameraConfigured(config: CameraSource.Config) {
        cameraConfig = config
        updatePreviewTransform()
        showMessage(StatusMessages.Source.CAMERA, null)
    }

    override fun onCameraError(message: String) {
        showMessage(StatusMessages.Source.CAMERA, Texts.cameraFailed(message))
    }

    /** Analysis thread. */
    override fun onFrame(argb: IntArray, width: Int, height: Int, config: CameraSource.Config, convertMs: Double, timestampNanos: Long) {
        if (benchmarkRunning) return
        if (engineSettings != wantedSettings) applySettingsOnAnalysisThread()
        val poseEngine = engine ?: return
        if (!poseEngine.ready) return
        val rotation = FrameRotation.frameRotation(config.sensorOrientation, displayDegrees, config.frontFacing)
        val spec = poseEngine.spec ?: return
        val result = try {
            poseEngine.process(argb, width, height, rotation)
        } catch (e: RuntimeException) {
            // A model whose outputs break the contract: say so once and stop analysing, instead of crashing.
            val reason = e.message ?: e.javaClass.simpleName
            poseEngine.closeAfterFailure()
            mainHandler.post { showMessage(StatusMessages.Source.MODEL, Texts.modelFailedWhileRunning(reason)) }
            return
        }
        fps.tick(System.nanoTime())
        preMs.add(convertMs + result.timings.preMs)
        inferMs.add(result.timings.inferMs)
        decodeMs.add(result.timings.decodeMs)
        val skeleton = skeletonFor(spec.joints)
        val frame = skeleton?.let { OverlayView.Frame(result.persons, result.letterbox.srcW, result.letterbox.srcH, config.frontFacing, it) }
        val hud = HudText.lines(
            fps.fps, preMs.mean, inferMs.mean, decodeMs.mean, result.persons.size,
            poseEngine.status?.describe() ?: "", spec.label,
        )
        mainHandler.post {
            overlay.setFrame(frame)
            overlay.setHud(hud)
        }
    }

    /** Analysis thread: brings the engine to [wantedSettings]; reports fallbacks and failures on screen. */
    private fun applySettingsOnAnalysisThread() {
        val poseEngine = engine ?: return
        val target = wantedSettings
        try {
            val status = poseEngine.apply(target)
            if (status != null) {
                fps.clear(); preMs.clear(); inferMs.clear(); decodeMs.clear()
                mainHandler.post {
                    val reason = status.fallbackReason
                    showMessage(StatusMessages.Source.MODEL, reason?.let { Texts.fallback(it) })
                    if (reason != null) Toast.makeText(this, Texts.fallback(reason), Toast.LENGTH_LONG).show()
                }
            }
        } catch (e: Exception) {
            val reason = e.message ?: e.javaClass.simpleName
            mainHandler.post { showMessage(StatusMessages.Source.MODEL, Texts.modelFailed(reason)) }
        }
        engineSettings = target
    }

    /** CrowdPose (14) or COCO (17) edges; other joint counts are drawn as HUD numbers only. */
    private fun skeletonFor(joints: Int): Skeleton? = Skeleton.entries.firstOrNull { it.joints == joints }

    // --- ControlPanel.Callbacks ---

    override fun onSettingsChanged(settings: InferenceSettings) {
        val modeChanged = settings.scaleMode != wantedSettings.scaleMode
        wantedSettings = settings
        overlay.setDrawing(settings.scaleMode, settings.keypointThreshold)
        if (modeChanged) updatePreviewTransform()
        // Rebuild now rather than at the next frame, so a camera-less benchmark also sees the new model.
        analysisHandler.post { if (engineSettings != wantedSettings) applySettingsOnAnalysisThread() }
    }

    override fun onFlipCamera() {
        frontCamera = !frontCamera
        overlay.setFrame(null)
        startCameraIfAllowed()
    }

    override fun onBenchmark(runs: Int) {
        val runner = benchmark ?: return
        panel.setBenchmarkRunning(true)
        Toast.makeText(this, Texts.BENCHMARK_RUNNING, Toast.LENGTH_SHORT).show()
        analysisHandler.post {
            benchmarkRunning = true
            val message = try {
                if (engineSettings != wantedSettings) applySettingsOnAnalysisThread()
                val outcome = runner.run(runs)
                Texts.benchmarkDone(outcome.report.total.meanMs, outcome.file.path)
            } catch (e: Exception) {
                Texts.benchmarkFailed(e.message ?: e.javaClass.simpleName)
            } finally {
                benchmarkRunning = false
                fps.clear()
            }
            mainHandler.post {
                panel.setBenchmarkRunning(false)
                Toast.makeText(this, message, Toast.LENGTH_LONG).show()
            }
        }
    }

    override fun onAbout() {
        AlertDialog.Builder(this)
            .setTitle(Texts.APP_NAME)
            .setMessage(Texts.ABOUT_TEXT)
            .setPositiveButton(Texts.CLOSE, null)
            .show()
    }

    companion object {
        private const val CAMERA_REQUEST = 1
    }
}
