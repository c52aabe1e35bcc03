package dev.litepose.demo.ui

/**
 * The camera-permission decisions of the activity, without Android types so they are unit-tested.
 *
 * The system dialog is shown once per activity instance by itself (a refusal must not loop through onResume);
 * after that only the "Grant camera access" button asks again, or sends the user to the app's settings page
 * once Android no longer shows the dialog ("don't ask again", or a second refusal on Android 11+).
 */
object CameraPermission {
    enum class Step {
        /** Permission held: open the camera. */
        START_CAMERA,

        /** Show the system dialog. */
        ASK,

        /** Refused earlier: explain and show the grant button. */
        SHOW_GRANT_BUTTON,
    }

    enum class GrantAction {
        /** The dialog can still be shown: ask again. */
        ASK_AGAIN,

        /** Android would refuse without a dialog: open Settings.ACTION_APPLICATION_DETAILS_SETTINGS. */
        OPEN_SETTINGS,
    }

    /** When the camera is wanted (surface ready, resume, flip). */
    fun onCameraWanted(granted: Boolean, askedBefore: Boolean): Step = when {
        granted -> Step.START_CAMERA
        askedBefore -> Step.SHOW_GRANT_BUTTON
        else -> Step.ASK
    }

    /**
     * The grant button was tapped. `showRationale` is Activity.shouldShowRequestPermissionRationale: after a
     * refusal it is true while the dialog can still appear, false once the refusal is permanent.
     */
    fun onGrantTapped(showRationale: Boolean): GrantAction = if (showRationale) GrantAction.ASK_AGAIN else GrantAction.OPEN_SETTINGS
}
