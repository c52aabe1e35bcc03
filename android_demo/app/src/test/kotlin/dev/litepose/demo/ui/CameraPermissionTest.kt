package dev.litepose.demo.ui

import dev.litepose.demo.ui.CameraPermission.GrantAction
import dev.litepose.demo.ui.CameraPermission.Step
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class CameraPermissionTest {
    @Test
    fun `the dialog is shown once, then the grant button takes over`() {
        assertEquals(Step.ASK, CameraPermission.onCameraWanted(granted = false, askedBefore = false))
        assertEquals(Step.SHOW_GRANT_BUTTON, CameraPermission.onCameraWanted(granted = false, askedBefore = true))
        assertEquals(Step.START_CAMERA, CameraPermission.onCameraWanted(granted = true, askedBefore = true))
        assertEquals(Step.START_CAMERA, CameraPermission.onCameraWanted(granted = true, askedBefore = false))
    }

    @Test
    fun `a permanent refusal sends the user to the settings page`() {
        assertEquals(GrantAction.ASK_AGAIN, CameraPermission.onGrantTapped(showRationale = true))
        assertEquals(GrantAction.OPEN_SETTINGS, CameraPermission.onGrantTapped(showRationale = false))
    }
}
