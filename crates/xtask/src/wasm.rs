//! Drops the `name` custom section (function names for stack traces) from a built wasm module:
//! the worker's is 3.4 MB (0.7 MB gzip) of the download and nothing runs without it. Every other
//! section, wasm-bindgen's included, is copied byte for byte. Before they go, the names tell
//! whether wasm-ld wrapped the exports in calls to the static constructors.

use std::path::Path;

use anyhow::{bail, Context, Result};

const MAGIC: &[u8] = b"\0asm";

/// Reads an unsigned LEB128 number at `at`, returning it and the position after it.
fn leb128(bytes: &[u8], mut at: usize) -> Result<(usize, usize)> {
    let (mut value, mut shift) = (0usize, 0u32);
    loop {
        let Some(&b) = bytes.get(at) else {
            bail!("the module ends inside a number at byte {at}");
        };
        at += 1;
        if shift >= 35 {
            bail!("a number longer than 32 bits at byte {at}");
        }
        value |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok((value, at));
        }
    }
}

/// A section of a module: its bytes (header included), and whether it is the `name` custom
/// section.
struct Section {
    bytes: std::ops::Range<usize>,
    is_names: bool,
}

/// The sections of `module`, in order.
fn sections(module: &[u8]) -> Result<Vec<Section>> {
    if module.len() < 8 || &module[..4] != MAGIC {
        bail!("not a wasm module");
    }
    let mut out = Vec::new();
    let mut at = 8;
    while at < module.len() {
        let start = at;
        let id = module[at];
        let (size, body) = leb128(module, at + 1)?;
        let end = body
            .checked_add(size)
            .filter(|&e| e <= module.len())
            .with_context(|| format!("section {id} at byte {start} runs past the module's end"))?;
        let is_names = id == 0 && {
            let (len, name) = leb128(module, body)?;
            module.get(name..name + len) == Some(b"name".as_slice())
        };
        out.push(Section {
            bytes: start..end,
            is_names,
        });
        at = end;
    }
    Ok(out)
}

/// `module` without its `name` custom sections.
pub fn without_names(module: &[u8]) -> Result<Vec<u8>> {
    let mut out = module[..8].to_vec();
    for section in sections(module)? {
        if !section.is_names {
            out.extend_from_slice(&module[section.bytes]);
        }
    }
    Ok(out)
}

/// How many functions of `module` wasm-ld named `*.command_export`: the wrappers it puts
/// around each export of a module it takes for a "command" (one that never calls
/// `__wasm_call_ctors` itself), which run every static constructor before the export.
pub fn command_exports(module: &[u8]) -> Result<usize> {
    const WRAPPER: &[u8] = b".command_export";
    Ok(sections(module)?
        .into_iter()
        .filter(|s| s.is_names)
        .map(|s| {
            module[s.bytes]
                .windows(WRAPPER.len())
                .filter(|w| *w == WRAPPER)
                .count()
        })
        .sum())
}

/// What [`strip_names`] did to a module: the bytes it saved, and how many `.command_export`
/// wrappers the dropped names showed (see [`command_exports`]; the names are the only record
/// of them).
pub struct Stripped {
    pub saved: usize,
    pub command_exports: usize,
}

/// Rewrites the module at `path` without its `name` section.
pub fn strip_names(path: &Path) -> Result<Stripped> {
    let module = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let damaged = || format!("{} is damaged", path.display());
    let command_exports = command_exports(&module).with_context(damaged)?;
    let stripped = without_names(&module).with_context(damaged)?;
    std::fs::write(path, &stripped).with_context(|| format!("writing {}", path.display()))?;
    Ok(Stripped {
        saved: module.len() - stripped.len(),
        command_exports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        // Sizes under 128 are one LEB128 byte; 200 takes two (0xc8 0x01).
        let mut out = vec![id];
        if body.len() < 128 {
            out.push(body.len() as u8);
        } else {
            out.extend([(body.len() as u8 & 0x7f) | 0x80, (body.len() >> 7) as u8]);
        }
        out.extend_from_slice(body);
        out
    }

    fn custom(name: &str, data: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(data);
        section(0, &body)
    }

    #[test]
    fn only_the_name_section_goes() {
        let header = b"\0asm\x01\0\0\0".to_vec();
        let types = section(1, &[1, 0x60, 0, 0]);
        let bindgen = custom("__wasm_bindgen_unstable", &[7; 200]);
        let names = custom("name", &[1, 2, 3]);
        // A section named like it, but longer, stays.
        let other = custom("names", &[4]);
        let module = [&header[..], &types, &names, &bindgen, &other].concat();
        let stripped = without_names(&module).unwrap();
        assert_eq!(stripped, [header, types, bindgen, other].concat());
        assert_eq!(without_names(&stripped).unwrap(), stripped);
    }

    #[test]
    fn command_wrappers_are_counted_in_the_name_section_only() {
        let header = b"\0asm\x01\0\0\0".to_vec();
        let types = section(1, &[1, 0x60, 0, 0]);
        let wrapped = custom("name", b"\x01main.command_export\x02f.command_export");
        // The same words outside the name section are data, not wrappers.
        let data = custom("other", b"x.command_export");
        let module = [&header[..], &types, &wrapped, &data].concat();
        assert_eq!(command_exports(&module).unwrap(), 2);
        let clean = [&header[..], &types, &custom("name", b"main"), &data].concat();
        assert_eq!(command_exports(&clean).unwrap(), 0);
        assert!(command_exports(b"not wasm").is_err());
    }

    #[test]
    fn damaged_modules_are_refused() {
        assert!(without_names(b"not wasm").is_err());
        let mut cut = b"\0asm\x01\0\0\0".to_vec();
        cut.extend(section(1, &[1, 0x60, 0, 0]));
        cut.pop();
        assert!(without_names(&cut).is_err());
        assert!(without_names(b"\0asm\x01\0\0\0\x01\xff").is_err());
    }
}
