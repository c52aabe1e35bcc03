package dev.litepose.demo.ui

import android.content.Context
import android.graphics.Color
import android.view.View
import android.view.ViewGroup
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.SeekBar
import android.widget.Spinner
import android.widget.TextView
import dev.litepose.demo.data.InferenceSettings
import dev.litepose.demo.ml.Accelerator
import dev.litepose.posecore.ScaleMode

/**
 * The controls, built in code: camera flip, fit/fill, benchmark, about, and a collapsible settings sheet with
 * model, accelerator, threads and the live thresholds. Emits complete [InferenceSettings] on every change.
 */
class ControlPanel(
    context: Context,
    modelLabels: List<String>,
    initial: InferenceSettings,
    private val callbacks: Callbacks,
) : LinearLayout(context) {
    interface Callbacks {
        fun onSettingsChanged(settings: InferenceSettings)
        fun onFlipCamera()
        fun onBenchmark(runs: Int)
        fun onAbout()
    }

    var settings: InferenceSettings = initial
        private set

    private val density = resources.displayMetrics.density
    private val sheet = LinearLayout(context).apply { orientation = VERTICAL }
    private val sheetScroll = ScrollView(context).apply { addView(sheet); visibility = View.GONE }
    private val fitFill = button(if (initial.scaleMode == ScaleMode.FIT) Texts.FILL else Texts.FIT) { toggleScaleMode() }
    private var benchmarkRuns = BENCHMARK_RUNS[1]
    private val benchmarkButton = button(Texts.BENCHMARK) { callbacks.onBenchmark(benchmarkRuns) }

    init {
        orientation = VERTICAL
        setBackgroundColor(Color.argb(150, 0, 0, 0))
        val row = LinearLayout(context).apply { orientation = HORIZONTAL }
        row.addView(button(Texts.FLIP_CAMERA) { callbacks.onFlipCamera() }, weighted())
        row.addView(fitFill, weighted())
        row.addView(benchmarkButton, weighted())
        row.addView(button(Texts.ABOUT) { callbacks.onAbout() }, weighted())
        row.addView(button(Texts.SETTINGS) { sheetScroll.visibility = if (sheetScroll.visibility == View.GONE) View.VISIBLE else View.GONE }, weighted())
        addView(sheetScroll, LayoutParams(LayoutParams.MATCH_PARENT, (220 * density).toInt()))
        addView(row, LayoutParams(LayoutParams.MATCH_PARENT, LayoutParams.WRAP_CONTENT))

        sheet.addView(spinner(Texts.MODEL, modelLabels, initial.modelIndex) { update(settings.copy(modelIndex = it)) })
        sheet.addView(spinner(Texts.ACCELERATOR, Accelerator.entries.map { it.label }, initial.accelerator.ordinal) {
            update(settings.copy(accelerator = Accelerator.entries[it]))
        })
        val threadChoices = (1..InferenceSettings.MAX_THREADS).toList()
        sheet.addView(spinner(Texts.THREADS, threadChoices.map { it.toString() }, initial.threads - 1) {
            update(settings.copy(threads = threadChoices[it]))
        })
        sheet.addView(spinner(Texts.RUNS, BENCHMARK_RUNS.map { it.toString() }, 1) { benchmarkRuns = BENCHMARK_RUNS[it] })
        sheet.addView(slider(Texts.DETECTION_THRESHOLD, Slider(0.01, 0.9, 89), initial.detectionThreshold) {
            update(settings.copy(detectionThreshold = it))
        })
        sheet.addView(slider(Texts.TAG_THRESHOLD, Slider(0.1, 3.0, 29), initial.tagThreshold) { update(settings.copy(tagThreshold = it)) })
        sheet.addView(slider(Texts.PERSON_SCORE, Slider(0.0, 0.9, 90), initial.minPersonScore.toDouble()) {
            update(settings.copy(minPersonScore = it.toFloat()))
        })
        sheet.addView(slider(Texts.KEYPOINT_THRESHOLD, Slider(0.0, 0.9, 90), initial.keypointThreshold.toDouble()) {
            update(settings.copy(keypointThreshold = it.toFloat()))
        })
    }

    /** Disables the benchmark button while a benchmark runs. */
    fun setBenchmarkRunning(running: Boolean) {
        benchmarkButton.isEnabled = !running
    }

    private fun update(new: InferenceSettings) {
        if (new == settings) return
        settings = new
        callbacks.onSettingsChanged(new)
    }

    private fun toggleScaleMode() {
        val mode = if (settings.scaleMode == ScaleMode.FILL) ScaleMode.FIT else ScaleMode.FILL
        fitFill.text = if (mode == ScaleMode.FIT) Texts.FILL else Texts.FIT
        update(settings.copy(scaleMode = mode))
    }

    private fun weighted() = LayoutParams(0, LayoutParams.WRAP_CONTENT, 1f)

    private fun button(label: String, onClick: () -> Unit) = Button(context).apply {
        text = label
        isAllCaps = false
        setOnClickListener { onClick() }
    }

    private fun label(text: String) = TextView(context).apply {
        this.text = text
        setTextColor(Color.WHITE)
    }

    private fun labelled(title: String, control: View): View = LinearLayout(context).apply {
        orientation = HORIZONTAL
        val pad = (4 * density).toInt()
        setPadding(pad, pad, pad, pad)
        addView(label(title), LayoutParams(0, LayoutParams.WRAP_CONTENT, 2f))
        addView(control, LayoutParams(0, LayoutParams.WRAP_CONTENT, 3f))
    }

    private fun spinner(title: String, items: List<String>, selected: Int, onSelected: (Int) -> Unit): View {
        val spinner = Spinner(context)
        spinner.adapter = ArrayAdapter(context, android.R.layout.simple_spinner_item, items).apply {
            setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        }
        spinner.setSelection(selected.coerceIn(0, (items.size - 1).coerceAtLeast(0)), false)
        spinner.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = onSelected(position)
            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
        return labelled(title, spinner)
    }

    private fun slider(title: String, slider: Slider, initial: Double, onChange: (Double) -> Unit): View {
        val caption = label("")
        fun show(value: Double) {
            caption.text = "%s %.2f".format(title, value)
        }
        show(initial)
        val bar = SeekBar(context).apply {
            max = slider.steps
            progress = slider.progress(initial)
            setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
                override fun onProgressChanged(seekBar: SeekBar?, progress: Int, fromUser: Boolean) {
                    val value = slider.value(progress)
                    show(value)
                    if (fromUser) onChange(value)
                }

                override fun onStartTrackingTouch(seekBar: SeekBar?) = Unit
                override fun onStopTrackingTouch(seekBar: SeekBar?) = Unit
            })
        }
        return LinearLayout(context).apply {
            orientation = HORIZONTAL
            val pad = (4 * density).toInt()
            setPadding(pad, pad, pad, pad)
            addView(caption, LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, 2f))
            addView(bar, LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, 3f))
        }
    }

    companion object {
        val BENCHMARK_RUNS = listOf(10, 50, 100, 300)
    }
}
