import dev.litepose.buildlogic.ModelBundleException
import dev.litepose.buildlogic.ModelBundler
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "dev.litepose.demo"
    compileSdk = libs.versions.compileSdk.get().toInt()

    defaultConfig {
        applicationId = "dev.litepose.demo"
        minSdk = libs.versions.minSdk.get().toInt()
        targetSdk = libs.versions.targetSdk.get().toInt()
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    // The code uses no generated classes (views are built in code), so CI can compile it without aapt2.
    buildFeatures {
        buildConfig = false
        viewBinding = false
        resValues = false
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets {
        getByName("main").java.srcDirs("src/main/kotlin")
        getByName("test").java.srcDirs("src/test/kotlin")
    }

    // Models are memory-mapped from the APK: never compress them.
    androidResources {
        noCompress += "tflite"
    }

    testOptions {
        unitTests.all { it.useJUnitPlatform() }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":posecore"))
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
    testImplementation(libs.junit.jupiter)
    testRuntimeOnly(libs.junit.platform.launcher)
    testImplementation(libs.orgjson)
}

/**
 * Copies the models of ../../tflite_models/manifest.json into generated assets (assets/models/...), after
 * checking each one's TFLite identifier and sha256 (buildSrc ModelBundler), and writes the app's model manifest
 * and the synthetic benchmark still. Listed models that are absent (git-ignored, made by `litepose convert`) are
 * skipped with a warning naming the command that makes each, and so are models built for x86 hosts
 * (`depthwise_form` "blocked"); fails the build with the offending file's path if
 * none is there or one is corrupt.
 */
abstract class BundleModelsTask : DefaultTask() {
    @get:Internal
    abstract val modelsDir: DirectoryProperty

    /** Every file under tflite_models/ (empty if it is missing: the task then reports the missing manifest). */
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.RELATIVE)
    abstract val modelFiles: ConfigurableFileCollection

    @get:OutputDirectory
    abstract val outputDir: DirectoryProperty

    @TaskAction
    fun bundle() {
        val result = try {
            ModelBundler.bundle(modelsDir.get().asFile, outputDir.get().asFile)
        } catch (e: ModelBundleException) {
            throw GradleException("LitePose models: ${e.message}")
        }
        for (s in result.skipped) logger.warn("LitePose models: ${s.warning}")
        for (h in result.hostOnly) logger.lifecycle("LitePose models: ${h.warning}")
        for (e in result.bundled) logger.lifecycle("bundled ${e.file}: ${e.variant} ${e.precision} ${e.inputSize} J=${e.joints}")
    }
}

val bundleModels = tasks.register<BundleModelsTask>("bundleModels") {
    val dir = rootProject.layout.projectDirectory.dir("../tflite_models")
    modelsDir.set(dir)
    modelFiles.from(fileTree(dir))
    outputDir.set(layout.buildDirectory.dir("generated/litepose/assets"))
}

androidComponents {
    onVariants { variant ->
        variant.sources.assets?.addGeneratedSourceDirectory(bundleModels, BundleModelsTask::outputDir)
    }
}
