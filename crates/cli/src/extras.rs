//! `kith completions`, `kith man` and `kith qr`: shell completion scripts
//! and manual pages generated from the clap grammar ([`crate::cli`]), and
//! QR codes for the terminal. None of them needs a data folder or a node.

use std::path::Path;

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;
use qrcode::{EcLevel, QrCode};

use crate::cli::Cli;
use crate::service::print_stdout;

/// `kith completions SHELL`: the completion script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kith", &mut script);
    print_stdout(&String::from_utf8_lossy(&script))
}

/// `kith man [--out-dir DIR]`: kith(1) on stdout, or one page per command
/// (kith.1, kith-put.1, kith-name-publish.1, …) written into `out_dir`.
pub(crate) fn man(out_dir: Option<&Path>) -> anyhow::Result<()> {
    // NAME reads "kith - a node for …", not "kith - kith: a node for …".
    let command = Cli::command().about("a node for a decentralized internet");
    match out_dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the manual page")?;
            print_stdout(&String::from_utf8_lossy(&page))
        }
        Some(out_dir) => {
            std::fs::create_dir_all(out_dir)
                .with_context(|| format!("cannot create {}", out_dir.display()))?;
            clap_mangen::generate_to(command, out_dir).with_context(|| {
                format!("cannot write the manual pages to {}", out_dir.display())
            })?;
            let mut pages: Vec<String> = std::fs::read_dir(out_dir)
                .with_context(|| format!("cannot list {}", out_dir.display()))?
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("kith") && name.ends_with(".1"))
                .collect();
            pages.sort();
            eprintln!(
                "wrote {} pages to {} ({} …)",
                pages.len(),
                out_dir.display(),
                pages.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
    }
}

/// `kith qr TEXT [--svg] [--invert]`: the QR code on stdout, quiet zone
/// included; two rows of modules per line of half blocks, or an SVG image.
pub(crate) fn qr(text: &str, svg: bool, invert: bool) -> anyhow::Result<()> {
    print_stdout(&qr_text(text, svg, invert)?)
}

/// The QR code of `text`, rendered.
fn qr_text(text: &str, svg: bool, invert: bool) -> anyhow::Result<String> {
    if text.trim().is_empty() {
        bail!("nothing to encode: the text is empty");
    }
    // Medium error correction survives a smudged screen; a longer text gets
    // the lowest level, which holds the most.
    let code = QrCode::with_error_correction_level(text, EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(text, EcLevel::L))
        .map_err(|error| match error {
            qrcode::types::QrError::DataTooLong => anyhow::anyhow!(
                "the text is too long for a QR code: {} bytes, and the largest QR code holds \
                 2953",
                text.len()
            ),
            other => anyhow::anyhow!("cannot make a QR code of this text: {other}"),
        })?;
    if svg {
        let mut image = code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build();
        image.push('\n');
        return Ok(image);
    }
    use qrcode::render::unicode::Dense1x2;
    // A terminal draws a block in its text colour. Light text on a dark
    // background (the usual) wants blocks for the light modules, so that a
    // camera sees dark modules on light; --invert is for the opposite.
    let (dark, light) = if invert {
        (Dense1x2::Dark, Dense1x2::Light)
    } else {
        (Dense1x2::Light, Dense1x2::Dark)
    };
    let mut image = code
        .render::<Dense1x2>()
        .dark_color(dark)
        .light_color(light)
        .quiet_zone(true)
        .build();
    image.push('\n');
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_square_half_blocks_with_a_quiet_zone() {
        let image = qr_text("kith:example", false, false).unwrap();
        let lines: Vec<&str> = image.lines().collect();
        let width = lines[0].chars().count();
        // Version 1 is 21 modules, plus 4 of quiet zone on each side; a
        // line carries two rows.
        assert!(width >= 29, "{image}");
        assert_eq!(lines.len(), width.div_ceil(2), "{image}");
        // Default colours: the quiet zone is light, drawn as full blocks.
        assert!(lines[0].chars().all(|c| c == '\u{2588}'), "{image}");
        assert!(lines.iter().all(|line| line.chars().count() == width));
    }

    #[test]
    fn too_long_and_empty_texts_are_refused() {
        let error = qr_text(&"x".repeat(3000), false, false).unwrap_err();
        assert!(error.to_string().contains("too long"), "{error}");
        let error = qr_text("  ", true, false).unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
    }
}
