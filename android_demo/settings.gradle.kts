// LitePose Edge Android demo: the camera app (:app) and the pure-Kotlin pose core (:posecore).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "litepose-android-demo"
include(":app", ":posecore")
