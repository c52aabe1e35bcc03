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
import android.media.ImageReader
import android.os.Build
import android.os.Handler
import android.os.HandlerThread
import android.view.Surface
import java.util.concurrent.Executor

/**
 * Camera2 source: a TextureView-backed preview plus a YUV_420_888 ImageReader for analysis.
 *
 * Only the newest frame is analysed: the reader holds 2 images, each callback takes
 * `acquireLatestImage()` (older queued frames are dropped), converts it to ARGB and closes it at once, so
 * the camera never waits for the (slower) inference that follows on the analysis thread.
 * Frames only live in memory: nothing is stored or sent.
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
        /** Main thread, before the first frame: set the preview transform. */
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
    private val mainHandler = Handler(context.mainLooper)
    private val mainExecutor = Executor { mainHandler.post(it) }

    @Volatile private var device: CameraDevice? = null
    @Volatile private var session: CameraCaptureSession? = null
    private var reader: ImageReader? = null
    private var previewSurface: Surface? = null
    private var argb = IntArray(0)

    /** True while a camera is open or opening. */
    @Volatile var running = false
        private set

    /**
     * Opens the first camera facing the requested way and starts preview + analysis. Needs the CAMERA
     * permission (checked by the activity) and an available SurfaceTexture.
     */
    @SuppressLint("MissingPermission")
    fun start(surfaceTexture: SurfaceTexture, front: Boolean) {
        stop()
        val id = try {
            findCamera(front)
        } catch (e: CameraAccessException) {
            listener.onCameraError("camera not accessible: ${e.message}")
            return
        }
        if (id == null) {
            listener.onCameraError(if (front) "no front camera" else "no back camera")
            return
        }
        val characteristics = manager.getCameraCharacteristics(id)
        val map = characteristics.get(CameraCharacteristics.SCALER_STREAM_CONFIGURATION_MAP)
        if (map == null) {
            listener.onCameraError("camera $id reports no stream configurations")
            return
        }
        val (analysis, preview) = try {
            SizeChooser.choose(
                map.getOutputSizes(ImageFormat.YUV_420_888).orEmpty().map { FrameSize(it.width, it.height) },
                map.getOutputSizes(SurfaceTexture::class.java).orEmpty().map { FrameSize(it.width, it.height) },
            )
        } catch (e: IllegalArgumentException) {
            listener.onCameraError("camera $id: ${e.message}")
            return
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
        imageReader.setOnImageAvailableListener({ r -> analyse(r, config) }, analysisHandler)
        reader = imageReader
        listener.onCameraConfigured(config)
        running = true
        try {
            manager.openCamera(id, object : CameraDevice.StateCallback() {
                override fun onOpened(camera: CameraDevice) {
                    if (!running) {
                        camera.close()
                        return
                    }
                    device = camera
                    createSession(camera, surface, imageReader)
                }

                override fun onDisconnected(camera: CameraDevice) {
                    camera.close()
                    if (device === camera) device = null
                }

                override fun onError(camera: CameraDevice, error: Int) {
                    camera.close()
                    if (device === camera) device = null
                    postError("camera $id failed (error $error)")
                }
            }, cameraHandler)
        } catch (e: CameraAccessException) {
            running = false
            listener.onCameraError("cannot open camera $id: ${e.message}")
        } catch (e: SecurityException) {
            running = false
            listener.onCameraError("camera permission missing")
        }
    }

    /** Closes session, camera and reader; frames in flight are dropped. */
    fun stop() {
        running = false
        try {
            session?.close()
        } catch (_: IllegalStateException) {
        }
        session = null
        device?.close()
        device = null
        reader?.close()
        reader = null
        previewSurface?.release()
        previewSurface = null
    }

    /** Stops the camera thread; the source cannot be started again. */
    fun release() {
        stop()
        cameraThread.quitSafely()
    }

    private fun findCamera(front: Boolean): String? {
        val wanted = if (front) CameraCharacteristics.LENS_FACING_FRONT else CameraCharacteristics.LENS_FACING_BACK
        return manager.cameraIdList.firstOrNull { id ->
            manager.getCameraCharacteristics(id).get(CameraCharacteristics.LENS_FACING) == wanted
        }
    }

    private fun createSession(camera: CameraDevice, preview: Surface, imageReader: ImageReader) {
        val callback = object : CameraCaptureSession.StateCallback() {
            override fun onConfigured(s: CameraCaptureSession) {
                if (device !== camera) {
                    s.close()
                    return
                }
                session = s
                try {
                    val request = camera.createCaptureRequest(CameraDevice.TEMPLATE_PREVIEW).apply {
                        addTarget(preview)
                        addTarget(imageReader.surface)
                        set(CaptureRequest.CONTROL_MODE, CaptureRequest.CONTROL_MODE_AUTO)
                    }
                    s.setRepeatingRequest(request.build(), null, cameraHandler)
                } catch (e: CameraAccessException) {
                    postError("cannot start the preview: ${e.message}")
                } catch (e: IllegalStateException) {
                    postError("camera closed while starting: ${e.message}")
                }
            }

            override fun onConfigureFailed(s: CameraCaptureSession) {
                postError("the camera rejected the preview + analysis streams")
            }
        }
        try {
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
                val outputs = listOf(OutputConfiguration(preview), OutputConfiguration(imageReader.surface))
                val executor = Executor { cameraHandler.post(it) }
                camera.createCaptureSession(SessionConfiguration(SessionConfiguration.SESSION_REGULAR, outputs, executor, callback))
            } else {
                @Suppress("DEPRECATION")
                camera.createCaptureSession(listOf(preview, imageReader.surface), callback, cameraHandler)
            }
        } catch (e: CameraAccessException) {
            postError("cannot configure the camera: ${e.message}")
        }
    }

    /** Analysis thread: newest frame only, converted and released before the listener runs inference. */
    private fun analyse(r: ImageReader, config: Config) {
        val image = try {
            r.acquireLatestImage()
        } catch (_: IllegalStateException) {
            null // reader closed by stop()
        } ?: return
        val width = image.width
        val height = image.height
        val timestamp = image.timestamp
        val t0 = System.nanoTime()
        try {
            if (argb.size != width * height) argb = IntArray(width * height)
            val planes = image.planes
            YuvToArgb.convert(
                width, height,
                YuvPlane(planes[0].buffer, planes[0].rowStride, planes[0].pixelStride),
                YuvPlane(planes[1].buffer, planes[1].rowStride, planes[1].pixelStride),
                YuvPlane(planes[2].buffer, planes[2].rowStride, planes[2].pixelStride),
                argb,
            )
        } finally {
            image.close()
        }
        val convertMs = (System.nanoTime() - t0) / 1e6
        if (running) listener.onFrame(argb, width, height, config, convertMs, timestamp)
    }

    private fun postError(message: String) {
        mainExecutor.execute { listener.onCameraError(message) }
    }
}
