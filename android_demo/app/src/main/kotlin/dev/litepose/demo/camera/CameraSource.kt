package dev.litepose.demo.camera

import android.annotation.SuppressLint
import android.content.Context
import android.graphics.ImageFormat
import android.graphics.SurfaceTexture
import android.hardware.camera2.CameraAccessException
import android.hardware.camera2.CameraCaptureSession
import android.hardware.camera2.CameraCharacteristics
import android.hardware.camera2.CameraDevice
import android.hardware.camera2.CameraManager
import android.hardware.camera2.CaptureRequest
import android.hardware.camera2.params.OutputConfiguration
import android.hardware.camera2.params.SessionConfiguration
import android.media.Image
import android.media.ImageReader
import android.os.Build
import android.os.Handler
import android.os.HandlerThread
import android.view.Surface
import dev.litepose.demo.ui.Texts
import java.util.concurrent.Executor
import java.util.concurrent.atomic.AtomicBoolean

/**
 * Camera2 source: a TextureView-backed preview plus a YUV_420_888 ImageReader for analysis.
 *
 * Only the newest frame is analysed, and the camera never waits for the (slower) inference: the reader
 * (2 images) is drained on its own "frames" thread, which takes `acquireLatestImage()` (older queued frames are
 * dropped) and closes each image at once. While the analysis thread is busy (inference, or a benchmark) the
 * image is dropped unread; otherwise it is converted to ARGB first and handed over, one frame at a time.
 * Frames only live in memory: nothing is stored or sent.
 *
 * [start] and [stop] run on the main thread, camera2 callbacks on the "camera" thread, the reader on the
 * "frames" thread, [Listener.onFrame] on the analysis thread. Each open has a generation ([CameraOpenTracker]):
 * callbacks of a replaced or stopped open close their camera and return. The reader is closed on the frames
 * thread, so it never closes under an image being read.
 */
class CameraSource(
    private val context: Context,
    private val analysisHandler: Handler,
    private val listener: Listener,
) {
    /** What was opened; the overlay and the preview transform need it. */
    data class Config(
        val cameraId: String,
        val frontFacing: Boolean,
        val sensorOrientation: Int,
        val analysisSize: FrameSize,
        val previewSize: FrameSize,
    )

    interface Listener {
        /** Main thread, right after the camera is asked for (before its first frame): set the preview transform. */
        fun onCameraConfigured(config: Config)

        /**
         * Analysis thread. `argb` is the frame in sensor orientation (`width × height`), valid only during the
         * call; `convertMs` is the YUV->ARGB time; `timestampNanos` the sensor timestamp.
         */
        fun onFrame(argb: IntArray, width: Int, height: Int, config: Config, convertMs: Double, timestampNanos: Long)

        /** Main thread. */
        fun onCameraError(message: String)
    }

    private val manager = context.getSystemService(CameraManager::class.java)
    private val cameraThread = HandlerThread("camera").apply { start() }
    private val cameraHandler = Handler(cameraThread.looper)
    private val framesThread = HandlerThread("frames").apply { start() }
    private val framesHandler = Handler(framesThread.looper)
    private val mainHandler = Handler(context.mainLooper)

    // Guarded by lock: main thread (start/stop) and camera thread (callbacks) both change them.
    private val lock = Any()
    private val opens = CameraOpenTracker()
    private var device: CameraDevice? = null
    private var session: CameraCaptureSession? = null
    private var reader: ImageReader? = null
    private var previewSurface: Surface? = null

    private var argb = IntArray(0) // written on the frames thread while no frame is being analysed
    private val analysing = AtomicBoolean(false) // a converted frame is queued for, or in, the analysis thread

    /** A start-up problem reported as a camera error, not a crash. */
    private class CameraUnavailable(message: String) : Exception(message)

    /**
     * Opens the first camera facing the requested way and starts preview + analysis. Needs the CAMERA
     * permission (checked by the activity) and an available SurfaceTexture. A no-op if this lens is already
     * open or opening on this texture (the permission result and onResume both start it on first launch).
     */
    fun start(surfaceTexture: SurfaceTexture, front: Boolean) {
        val previous = synchronized(lock) {
            if (opens.isOpenOrOpening(surfaceTexture, front)) return
            opens.stop()
            detachLocked()
        }
        previous()
        var config: Config? = null
        val failure: String? = synchronized(lock) {
            val generation = opens.begin(surfaceTexture, front)
            val message = try {
                config = openLocked(generation, surfaceTexture, front)
                null
            } catch (e: CameraUnavailable) {
                e.message
            } catch (e: CameraAccessException) {
                "camera not accessible: ${e.message}"
            } catch (e: SecurityException) {
                "camera permission missing"
            } catch (e: IllegalArgumentException) {
                "cannot set up the camera: ${e.message}"
            } catch (e: IllegalStateException) {
                "cannot set up the camera: ${e.message}"
            } catch (e: Surface.OutOfResourcesException) {
                "the preview surface is gone: ${e.message}"
            }
            if (message != null) opens.ended(generation)
            message
        }
        if (failure != null) {
            stop() // releases whatever was set up before the failure
            listener.onCameraError(failure)
            return
        }
        config?.let { listener.onCameraConfigured(it) }
    }

    /** Closes session, camera and reader; frames in flight are dropped. */
    fun stop() {
        val detached = synchronized(lock) {
            opens.stop()
            detachLocked()
        }
        detached()
    }

    /** Stops the camera and frames threads; the source cannot be started again. */
    fun release() {
        stop()
        cameraThread.quitSafely()
        framesThread.quitSafely()
    }

    /** Under lock: sets up the reader and preview surface of `generation` and asks for the camera. */
    @SuppressLint("MissingPermission")
    private fun openLocked(generation: Int, surfaceTexture: SurfaceTexture, front: Boolean): Config {
        val id = findCamera(front) ?: throw CameraUnavailable(if (front) "no front camera" else "no back camera")
        val characteristics = manager.getCameraCharacteristics(id)
        val map = characteristics.get(CameraCharacteristics.SCALER_STREAM_CONFIGURATION_MAP)
            ?: throw CameraUnavailable("camera $id reports no stream configurations")
        val (analysis, preview) = try {
            SizeChooser.choose(
                map.getOutputSizes(ImageFormat.YUV_420_888).orEmpty().map { FrameSize(it.width, it.height) },
                map.getOutputSizes(SurfaceTexture::class.java).orEmpty().map { FrameSize(it.width, it.height) },
            )
        } catch (e: IllegalArgumentException) {
            throw CameraUnavailable("camera $id: ${e.message}")
        }
        val config = Config(
            cameraId = id,
            frontFacing = front,
            sensorOrientation = characteristics.get(CameraCharacteristics.SENSOR_ORIENTATION) ?: 0,
            analysisSize = analysis,
            previewSize = preview,
        )
        surfaceTexture.setDefaultBufferSize(preview.width, preview.height)
        val surface = Surface(surfaceTexture)
        previewSurface = surface
        val imageReader = ImageReader.newInstance(analysis.width, analysis.height, ImageFormat.YUV_420_888, 2)
        reader = imageReader
        imageReader.setOnImageAvailableListener({ r -> onImageAvailable(r, config, generation) }, framesHandler)
        manager.openCamera(id, deviceCallback(generation, id, surface, imageReader), cameraHandler)
        return config
    }

    /** Under lock: takes the open's objects out of the fields; the returned function closes them (outside the lock). */
    private fun detachLocked(): () -> Unit {
        val oldSession = session
        val oldDevice = device
        val oldReader = reader
        val oldSurface = previewSurface
        session = null
        device = null
        reader = null
        previewSurface = null
        return {
            try {
                oldSession?.close()
            } catch (_: IllegalStateException) {
            }
            oldDevice?.close()
            oldReader?.let { closeOnFramesThread(it) }
            oldSurface?.release()
        }
    }

    /** After any image being read: ImageReader.close() closes its acquired images, whose planes then throw. */
    private fun closeOnFramesThread(r: ImageReader) {
        r.setOnImageAvailableListener(null, null)
        if (!framesHandler.post { r.close() }) r.close() // the frames thread has quit: nothing reads it
    }

    private fun findCamera(front: Boolean): String? {
        val wanted = if (front) CameraCharacteristics.LENS_FACING_FRONT else CameraCharacteristics.LENS_FACING_BACK
        return manager.cameraIdList.firstOrNull { id ->
            manager.getCameraCharacteristics(id).get(CameraCharacteristics.LENS_FACING) == wanted
        }
    }

    private fun isCurrent(generation: Int): Boolean = synchronized(lock) { opens.isCurrent(generation) }

    private fun deviceCallback(generation: Int, id: String, surface: Surface, imageReader: ImageReader) =
        object : CameraDevice.StateCallback() {
            override fun onOpened(camera: CameraDevice) =
                adoptIfCurrent(generation, camera, { true }) {
                    device = camera
                    createSessionLocked(generation, camera, surface, imageReader)
                }

            override fun onDisconnected(camera: CameraDevice) {
                if (lost(generation, camera)) postError(generation, Texts.CAMERA_DISCONNECTED)
            }

            override fun onError(camera: CameraDevice, error: Int) {
                if (lost(generation, camera)) postError(generation, "camera $id failed (error $error)")
            }
        }

    /**
     * Camera thread: keeps `resource` (under the lock, through `adopt`, which returns an error message or null)
     * if `generation` is still the current open and `stillWanted()`; otherwise closes it, as a stale answer.
     */
    private inline fun adoptIfCurrent(
        generation: Int, resource: AutoCloseable, stillWanted: () -> Boolean, adopt: () -> String?,
    ) {
        var stale = false
        val error = synchronized(lock) {
            if (opens.isCurrent(generation) && stillWanted()) {
                adopt()
            } else {
                stale = true
                null
            }
        }
        if (stale) resource.close()
        error?.let { failed(generation, it) }
    }

    /**
     * Camera thread: setting up the open of `generation` failed. Its session and camera are closed and the open
     * ends, so that the next start (resume, flip, a new surface) opens the camera again instead of finding it
     * "already open" with no session; then the error is shown.
     */
    private fun failed(generation: Int, message: String) {
        var oldSession: CameraCaptureSession? = null
        var oldDevice: CameraDevice? = null
        synchronized(lock) {
            if (!opens.isCurrent(generation)) return
            opens.ended(generation)
            oldSession = session
            oldDevice = device
            session = null
            device = null
        }
        try {
            oldSession?.close()
        } catch (_: IllegalStateException) {
        }
        oldDevice?.close()
        postError(generation, message)
    }

    /** Camera thread: the camera of `generation` stopped working. Returns true if that open was the current one. */
    private fun lost(generation: Int, camera: CameraDevice): Boolean {
        camera.close()
        return synchronized(lock) {
            val current = opens.isCurrent(generation)
            if (current) {
                if (device === camera) {
                    device = null
                    session = null
                }
                opens.ended(generation)
            }
            current
        }
    }

    /** Under lock, camera thread: asks for the preview + analysis session. Returns an error message or null. */
    private fun createSessionLocked(generation: Int, camera: CameraDevice, preview: Surface, imageReader: ImageReader): String? {
        val callback = object : CameraCaptureSession.StateCallback() {
            override fun onConfigured(s: CameraCaptureSession) =
                adoptIfCurrent(generation, s, { device === camera }) {
                    session = s
                    startRepeating(camera, s, preview, imageReader)
                }

            override fun onConfigureFailed(s: CameraCaptureSession) {
                try {
                    s.close()
                } catch (_: IllegalStateException) {
                }
                failed(generation, "the camera rejected the preview + analysis streams")
            }
        }
        // A surface released by a concurrent stop, or a closed camera, throws here instead of answering.
        return try {
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
                val outputs = listOf(OutputConfiguration(preview), OutputConfiguration(imageReader.surface))
                val executor = Executor { cameraHandler.post(it) }
                camera.createCaptureSession(SessionConfiguration(SessionConfiguration.SESSION_REGULAR, outputs, executor, callback))
            } else {
                @Suppress("DEPRECATION")
                camera.createCaptureSession(listOf(preview, imageReader.surface), callback, cameraHandler)
            }
            null
        } catch (e: CameraAccessException) {
            "cannot configure the camera: ${e.message}"
        } catch (e: IllegalArgumentException) {
            "cannot configure the camera: ${e.message}"
        } catch (e: IllegalStateException) {
            "camera closed while configuring: ${e.message}"
        }
    }

    /** Returns an error message or null. */
    private fun startRepeating(camera: CameraDevice, s: CameraCaptureSession, preview: Surface, imageReader: ImageReader): String? =
        try {
            val request = camera.createCaptureRequest(CameraDevice.TEMPLATE_PREVIEW).apply {
                addTarget(preview)
                addTarget(imageReader.surface)
                set(CaptureRequest.CONTROL_MODE, CaptureRequest.CONTROL_MODE_AUTO)
            }
            s.setRepeatingRequest(request.build(), null, cameraHandler)
            null
        } catch (e: CameraAccessException) {
            "cannot start the preview: ${e.message}"
        } catch (e: IllegalArgumentException) {
            "cannot start the preview: ${e.message}"
        } catch (e: IllegalStateException) {
            "camera closed while starting: ${e.message}"
        }

    /** What [analyse] keeps of an image after closing it. */
    private class Converted(val width: Int, val height: Int, val timestampNanos: Long, val convertMs: Double)

    /**
     * Frames thread: takes the newest image and closes it at once, so the reader never fills up and the camera
     * never waits. Converted and handed to the analysis thread only when that is idle; otherwise dropped.
     */
    private fun onImageAvailable(r: ImageReader, config: Config, generation: Int) {
        val image = try {
            r.acquireLatestImage()
        } catch (_: IllegalStateException) {
            null // reader closed
        } ?: return
        val frame = try {
            if (analysing.get() || !isCurrent(generation)) null else convert(image)
        } catch (_: IllegalStateException) {
            null // the image was closed under us (reader closed): a dropped frame
        } finally {
            try {
                image.close()
            } catch (_: IllegalStateException) {
            }
        }
        if (frame == null) return
        val pixels = argb
        analysing.set(true)
        val posted = analysisHandler.post {
            try {
                if (isCurrent(generation)) {
                    listener.onFrame(pixels, frame.width, frame.height, config, frame.convertMs, frame.timestampNanos)
                }
            } finally {
                analysing.set(false)
            }
        }
        if (!posted) analysing.set(false) // the analysis thread has quit
    }

    private fun convert(image: Image): Converted {
        val t0 = System.nanoTime()
        // the crop rectangle is the valid picture (the whole buffer unless the producer set one)
        val crop = image.cropRect.takeIf { !it.isEmpty && it.left >= 0 && it.top >= 0 && it.right <= image.width && it.bottom <= image.height }
        val width = crop?.width() ?: image.width
        val height = crop?.height() ?: image.height
        if (argb.size != width * height) argb = IntArray(width * height)
        val planes = image.planes
        YuvToArgb.convert(
            width, height,
            YuvPlane(planes[0].buffer, planes[0].rowStride, planes[0].pixelStride),
            YuvPlane(planes[1].buffer, planes[1].rowStride, planes[1].pixelStride),
            YuvPlane(planes[2].buffer, planes[2].rowStride, planes[2].pixelStride),
            argb,
            crop?.left ?: 0,
            crop?.top ?: 0,
        )
        return Converted(width, height, image.timestamp, (System.nanoTime() - t0) / 1e6)
    }

    /** Shown on the main thread unless the open it concerns was replaced or stopped meanwhile. */
    private fun postError(generation: Int, message: String) {
        mainHandler.post { if (isCurrent(generation)) listener.onCameraError(message) }
    }
}
