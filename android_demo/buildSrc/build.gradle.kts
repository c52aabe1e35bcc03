// Build logic of the demo: model bundling (verify sha256 + TFLite magic, copy into app assets) and the
// synthetic benchmark still. Plain Kotlin without Gradle types, so CI compiles and unit-tests it with Maven
// (compile-check/). Versions: keep in step with gradle/libs.versions.toml (buildSrc cannot read the catalog).
plugins {
    `kotlin-dsl`
}

repositories {
    mavenCentral()
}

dependencies {
    implementation("org.json:json:20250517")
    testImplementation("org.junit.jupiter:junit-jupiter:5.13.4")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher")
}

tasks.test {
    useJUnitPlatform()
}
