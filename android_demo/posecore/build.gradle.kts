// The pure-Kotlin pose core as the Gradle module `:posecore` of the Android project. Same sources and
// tests as pom.xml (the Maven build CI runs, since Gradle cannot be downloaded there); keep the Kotlin and
// JUnit versions of gradle/libs.versions.toml equal to the pom's.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
        allWarningsAsErrors.set(true)
    }
}

dependencies {
    testImplementation(libs.junit.jupiter)
    testRuntimeOnly(libs.junit.platform.launcher)
}

tasks.test {
    useJUnitPlatform()
    // GoldenVectorsTest finds the committed synthetic cases (and ../../golden) from here;
    // -Dlitepose.golden=DIR (or env LITEPOSE_GOLDEN) points it at exported golden vectors.
    systemProperty("posecore.basedir", projectDir.absolutePath)
    providers.systemProperty("litepose.golden").orNull?.let { systemProperty("litepose.golden", it) }
}
