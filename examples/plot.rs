//! `plot`: draws a table of benchmark results as one SVG: a bar chart per metric, and
//! a latency-percentile plot. Used by `scripts/ladder.sh` for `docs/ladder.svg`, and
//! meant for any script that measures several servers.
//!
//! **Input** is a tab-separated table (TSV), chosen because a script can write it
//! with `printf` and no field ever needs quoting. Here `\t` stands for a tab:
//!
//! ```text
//! # lines starting with '#' are comments
//! label\tgroup\tdeliveries_per_s\tserver_ns_per_delivery\tlatency_p50_us\tlatency_p99_us
//! 1 threads\tladder\t183000\t2100\t420\t2900
//! miochat\treal\t810000\t900\t180\t700
//! ```
//!
//! - The first non-comment line is the header: `label`, `group`, then metric names.
//! - Each further line is one row (one server): a label shown on the axis, a group
//!   (rows of a group share a colour), and one value per metric. An empty cell, `-`
//!   or anything that is not a number is a missing value, drawn as no bar.
//! - A metric named `latency_pNN_us` is a latency percentile: `p50` is the 50th,
//!   `p999` the 99.9th, `p9999` the 99.99th. The percentile columns together make
//!   the percentile plot (one line per row, log scale); every other column gets a bar
//!   chart.
//!
//! **Usage:** `plot INPUT.tsv OUTPUT.svg [--title TEXT] [--bars COL,COL,...]`
//! (`--bars` picks and orders the bar charts; by default every non-percentile
//! metric gets one).
//!
//! Only plotters' SVG backend is used (no font files: text is left to the viewer).

use std::error::Error;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// Width of one chart panel, in pixels.
const PANEL_WIDTH: u32 = 520;
/// Height of one chart panel, in pixels.
const PANEL_HEIGHT: u32 = 300;
/// Panels per row of the output.
const COLUMNS: u32 = 2;

/// The parsed input: metric names, and one row per server.
struct Table {
    metrics: Vec<String>,
    rows: Vec<Row>,
}

/// One server's results.
struct Row {
    label: String,
    group: String,
    values: Vec<Option<f64>>,
}

/// What the command line asked for.
struct Options {
    input: String,
    output: String,
    title: Option<String>,
    bars: Option<Vec<String>>,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() {
    if let Err(e) = parse_args().and_then(|options| run(&options)) {
        eprintln!("plot: {e}");
        std::process::exit(1);
    }
}

/// `plot INPUT OUTPUT [--title TEXT] [--bars A,B]`.
fn parse_args() -> Result<Options> {
    let usage = "usage: plot INPUT.tsv OUTPUT.svg [--title TEXT] [--bars COL,COL,...]";
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let (mut title, mut bars) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--title" => title = Some(args.next().ok_or(usage)?),
            "--bars" => {
                let list = args.next().ok_or(usage)?;
                bars = Some(list.split(',').map(str::to_string).collect());
            }
            _ => positional.push(arg),
        }
    }
    let [input, output] = <[String; 2]>::try_from(positional).map_err(|_| usage)?;
    Ok(Options {
        input,
        output,
        title,
        bars,
    })
}

/// Reads the table and draws every panel into one SVG.
fn run(options: &Options) -> Result<()> {
    let table = read_table(&std::fs::read_to_string(&options.input)?)?;
    let percentiles: Vec<(usize, f64)> = (table.metrics.iter().enumerate())
        .filter_map(|(i, name)| percentile_of(name).map(|p| (i, p)))
        .collect();
    let bars: Vec<usize> = match &options.bars {
        Some(names) => names
            .iter()
            .map(|name| table.metrics.iter().position(|m| m == name))
            .map(|found| found.ok_or("--bars names a column the table does not have"))
            .collect::<std::result::Result<_, _>>()?,
        None => (0..table.metrics.len())
            .filter(|&i| percentile_of(&table.metrics[i]).is_none())
            .collect(),
    };
    let panels = bars.len() as u32 + u32::from(!percentiles.is_empty());
    let rows = panels.div_ceil(COLUMNS).max(1);
    let title_height = if options.title.is_some() { 40 } else { 0 };
    let size = (PANEL_WIDTH * COLUMNS, PANEL_HEIGHT * rows + title_height);
    let root = SVGBackend::new(&options.output, size).into_drawing_area();
    root.fill(&WHITE)?;
    let body = match &options.title {
        Some(title) => root.titled(title, ("sans-serif", 24))?,
        None => root.clone(),
    };
    let areas = body.split_evenly((rows as usize, COLUMNS as usize));
    for (area, &metric) in areas.iter().zip(&bars) {
        draw_bars(area, &table, metric)?;
    }
    if !percentiles.is_empty() {
        draw_percentiles(&areas[bars.len()], &table, &percentiles)?;
    }
    root.present()?;
    Ok(())
}

/// Parses the TSV described in the file's doc.
fn read_table(text: &str) -> Result<Table> {
    let mut lines = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'));
    let header: Vec<&str> = lines.next().ok_or("empty table")?.split('\t').collect();
    if header.len() < 3 || header[0] != "label" || header[1] != "group" {
        return Err("the header must be: label, group, then metric names (tab-separated)".into());
    }
    let metrics: Vec<String> = header[2..].iter().map(|m| m.trim().to_string()).collect();
    let rows: Vec<Row> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or_default().trim();
            Row {
                label: cell(0).to_string(),
                group: cell(1).to_string(),
                values: (0..metrics.len())
                    .map(|m| cell(m + 2).parse::<f64>().ok().filter(|v| v.is_finite()))
                    .collect(),
            }
        })
        .collect();
    if rows.is_empty() {
        return Err("the table has a header but no rows".into());
    }
    Ok(Table { metrics, rows })
}

/// `latency_p99_us` → 99, `latency_p999_us` → 99.9; `None` for other names.
fn percentile_of(metric: &str) -> Option<f64> {
    let digits = metric.strip_prefix("latency_p")?.strip_suffix("_us")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = &digits[..digits.len().min(2)];
    let fraction = &digits[whole.len()..];
    format!("{whole}.{fraction}0").parse().ok()
}

/// The colour of a group: the same for every row of the group.
fn group_colour(table: &Table, group: &str) -> PaletteColor<Palette99> {
    let mut groups: Vec<&str> = table.rows.iter().map(|r| r.group.as_str()).collect();
    groups.dedup();
    Palette99::pick(groups.iter().position(|g| *g == group).unwrap_or(0))
}

/// One bar per row for `metric`.
fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    table: &Table,
    metric: usize,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let values: Vec<Option<f64>> = table.rows.iter().map(|r| r.values[metric]).collect();
    let top = values.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let count = table.rows.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&table.metrics[metric], ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d((0..count - 1).into_segmented(), 0.0..(top * 1.15).max(1.0))?;
    let label_of = |segment: &SegmentValue<usize>| match segment {
        SegmentValue::CenterOf(i) => table
            .rows
            .get(*i)
            .map_or(String::new(), |r| r.label.clone()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(count)
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| short_number(*v))
        .draw()?;
    chart.draw_series(table.rows.iter().enumerate().filter_map(|(i, row)| {
        let value = row.values[metric]?;
        let colour = group_colour(table, &row.group);
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), value),
            ],
            colour.filled(),
        );
        bar.set_margin(0, 0, 6, 6);
        Some(bar)
    }))?;
    Ok(())
}

/// One line per row across the latency percentiles: the percentiles evenly spaced
/// on x (p50, p90, p99, p99.9 ...), microseconds on a log scale on y.
fn draw_percentiles<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    table: &Table,
    percentiles: &[(usize, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all = table
        .rows
        .iter()
        .flat_map(|r| percentiles.iter().filter_map(|&(m, _)| r.values[m]));
    let (low, high) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let floor = low.clamp(0.1, 1e12) / 2.0;
    let last = percentiles.len() as f64 - 1.0;
    let mut chart = ChartBuilder::on(area)
        .caption("latency percentiles (µs)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.3..last + 0.3, (floor..high.max(1.0) * 2.0).log_scale())?;
    let x_label = |x: &f64| {
        let index = x.round();
        let near = (x - index).abs() < 0.01 && index >= 0.0 && index <= last;
        if near {
            format!("p{}", percentiles[index as usize].1)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(percentiles.len() * 4)
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v| short_number(*v))
        .draw()?;
    for (index, row) in table.rows.iter().enumerate() {
        let colour = Palette99::pick(index).to_rgba();
        let points: Vec<(f64, f64)> = (percentiles.iter().enumerate())
            .filter_map(|(x, &(m, _))| row.values[m].map(|v| (x as f64, v.max(floor))))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(&row.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

/// 1234567 → "1.2M", 2500 → "2.5k", 12.5 → "12.5".
fn short_number(value: f64) -> String {
    match value.abs() {
        v if v >= 1e6 => format!("{:.1}M", value / 1e6),
        v if v >= 1e3 => format!("{:.1}k", value / 1e3),
        v if v >= 10.0 || v == 0.0 => format!("{value:.0}"),
        _ => format!("{value:.2}"),
    }
}
