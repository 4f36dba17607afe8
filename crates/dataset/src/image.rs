//! PNG encoding/decoding of the frames stored in `image` features.

use std::io::Cursor;

/// A decoded camera frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// H×W×3 RGB u8, row-major (`rgb[(y * width + x) * 3 + c]`).
    pub rgb: Vec<u8>,
}

/// Encodes an H×W×3 RGB u8 buffer as PNG (fast deflate, adaptive filter: deterministic).
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(rgb.len() / 2 + 64);
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(rgb).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Decodes a PNG (any colour type / bit depth) to 8-bit RGB.
pub fn decode_png(bytes: &[u8]) -> Result<Image, String> {
    if bytes.len() >= 3 && bytes[..3] == [0xFF, 0xD8, 0xFF] {
        return Err("JPEG-encoded image; only PNG is supported".to_string());
    }
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| e.to_string())?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width, info.height);
    let rgb = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        png::ColorType::Indexed => {
            return Err("indexed PNG was not expanded".to_string());
        }
    };
    if rgb.len() != w as usize * h as usize * 3 {
        return Err(format!(
            "decoded {} bytes for {w}x{h} RGB (row padding?)",
            rgb.len()
        ));
    }
    Ok(Image {
        width: w,
        height: h,
        rgb,
    })
}
