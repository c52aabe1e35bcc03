package dev.litepose.demo.ui

/**
 * Every user-visible string, in one place. The app has no generated R class (views are built in code so CI
 * can compile it without the Android SDK); translating means replacing this object's values.
 */
object Texts {
    const val APP_NAME = "LitePose"
    const val FLIP_CAMERA = "Flip camera"
    const val BENCHMARK = "Benchmark"
    const val ABOUT = "About"
    const val SETTINGS = "Settings"
    const val FIT = "Fit"
    const val FILL = "Fill"
    const val MODEL = "Model"
    const val ACCELERATOR = "Accelerator"
    const val THREADS = "CPU threads"
    const val RUNS = "Benchmark runs"
    const val DETECTION_THRESHOLD = "Detection threshold"
    const val TAG_THRESHOLD = "Tag threshold"
    const val PERSON_SCORE = "Min person score"
    const val KEYPOINT_THRESHOLD = "Keypoint threshold"
    const val CLOSE = "Close"
    const val PERMISSION_NEEDED = "LitePose needs the camera to find people. Frames stay on this phone."
    const val GRANT_CAMERA = "Grant camera access"
    const val OPEN_SETTINGS_FAILED = "Could not open the app settings: allow the camera under Settings › Apps › LitePose › Permissions."
    const val CAMERA_DISCONNECTED = "the camera was disconnected (another app may be using it); reopen LitePose to retry"
    const val BENCHMARK_RUNNING = "Benchmark running…"
    const val NO_MODELS = "No models bundled: make them with `litepose convert` into tflite_models/ and rebuild (see android_demo/README.md)."

    fun benchmarkDone(meanMs: Double, path: String) = "Benchmark: %.1f ms per frame; JSON in logcat and %s".format(meanMs, path)

    fun benchmarkFailed(reason: String) = "Benchmark failed: $reason"

    fun modelFailed(reason: String) = "Model could not be loaded: $reason"

    fun modelFailedWhileRunning(reason: String) = "Model failed while running: $reason"

    fun cameraFailed(reason: String) = "Camera: $reason"

    fun fallback(reason: String) = "GPU delegate not used, running on CPU: $reason"

    const val ABOUT_TEXT = """LitePose Edge demo: real-time multi-person pose estimation with LitePose (CVPR 2022) models converted to LiteRT (TensorFlow Lite).

Privacy: camera frames are processed in memory only. They are never stored and never sent anywhere: the app has no internet permission. Benchmark mode writes only timing numbers (a JSON file in the app's own folder).

HUD: FPS is a moving average over the last 30 frames; pre = YUV conversion + rotation + letterbox, infer = LiteRT interpreter, decode = fast bottom-up decoder (heatmaps + associative-embedding tags). Each person gets its own colour."""
}
