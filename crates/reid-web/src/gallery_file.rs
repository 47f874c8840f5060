//! The gallery file: the people of a gallery (a picture of each, their embedding, how many
//! frames they were seen in) and the model that embedded them, in one file a user saves and
//! opens again, checked by a SHA-256 and optionally encrypted (the encryption itself is the
//! browser's WebCrypto; this module lays out its parameters and checks everything else).
//!
//! Layout (integers little-endian):
//! ```text
//! "REIDGALLERY\n"  12 bytes, then the format version (1 byte) and the kind (1 byte):
//! kind 0, plain:      SHA-256 of the body (32 bytes) | body
//! kind 1, encrypted:  PBKDF2-SHA-256 iterations (u32) | salt (16) | AES-GCM IV (12) |
//!                     AES-256-GCM of (SHA-256 of the body | body), tag at the end
//! body:               manifest length (u32) | manifest (JSON) | the pictures, one after another
//! ```
//! The manifest ([`Manifest`]) gives each entry's name, picture type and length, frame count
//! and embedding (JSON numbers written so that they read back to the same `f32`), and where
//! and when the person was seen (optional: files saved before it was kept read without it).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::seen::Seen;

/// The file's first bytes.
pub const MAGIC: &[u8; 12] = b"REIDGALLERY\n";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// The file name extension offered when saving.
pub const EXTENSION: &str = "reidgallery";
/// PBKDF2-SHA-256 iterations for a new encrypted file (OWASP's 2023 figure for this hash).
pub const ITERATIONS: u32 = 600_000;
/// Fewer iterations than this are refused when reading: a file claiming 1 iteration would make
/// a passphrase cheap to guess, and we never write one.
pub const MIN_ITERATIONS: u32 = 100_000;
/// More than this are refused too: the browser would work for minutes before saying no.
pub const MAX_ITERATIONS: u32 = 10_000_000;
pub const SALT_BYTES: usize = 16;
pub const IV_BYTES: usize = 12;
/// Entries read from one file at most.
pub const MAX_ENTRIES: usize = 100_000;

const HEADER: usize = MAGIC.len() + 2;
const CHECKSUM: usize = 32;
const PLAIN: u8 = 0;
const ENCRYPTED: u8 = 1;

/// Which model made the embeddings: the same model (and aggregator) gives comparable ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStamp {
    /// The network, for people ("MobileNetV2").
    pub architecture: String,
    /// Embedding width.
    pub dim: usize,
    /// SHA-256 (hex) of the model file.
    pub model: String,
    /// SHA-256 (hex) of the temporal aggregator's file, when one was in use.
    pub aggregator: Option<String>,
}

/// One person of the gallery.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    /// Frames seen in, for a person followed through a video.
    pub frames: Option<u64>,
    /// The camera and time (files saved before they were kept have none).
    pub seen: Option<Seen>,
    /// The L2-normalised embedding, `ModelStamp::dim` wide.
    pub embedding: Vec<f32>,
    /// MIME type of `picture` ("image/jpeg").
    pub picture_type: String,
    /// The person's picture, encoded.
    pub picture: Vec<u8>,
}

/// A whole gallery.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    pub model: ModelStamp,
    /// Whether the pictures' head regions were blurred when saved.
    pub heads_blurred: bool,
    pub entries: Vec<Entry>,
}

/// The body's JSON part.
#[derive(Serialize, Deserialize)]
struct Manifest {
    model: ModelStamp,
    heads_blurred: bool,
    entries: Vec<ManifestEntry>,
}

#[derive(Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frames: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seen: Option<Seen>,
    embedding: Vec<f32>,
    picture_type: String,
    picture_bytes: usize,
}

/// The parameters and ciphertext of an encrypted file, for WebCrypto to open.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    pub iterations: u32,
    pub salt: [u8; SALT_BYTES],
    pub iv: [u8; IV_BYTES],
    pub ciphertext: Vec<u8>,
}

/// A gallery file as read: open, or waiting for its passphrase.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Plain(Gallery),
    Encrypted(Sealed),
}

/// Why a file cannot be read, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError(pub String);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FileError {}

fn error<T>(message: impl Into<String>) -> Result<T, FileError> {
    Err(FileError(message.into()))
}

const DAMAGED: &str =
    "the gallery file is damaged (its checksum does not match): nothing was added";

/// Hex SHA-256 of `bytes` (a model's fingerprint).
pub fn fingerprint(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The checksummed payload of `gallery`: SHA-256 of the body, then the body. It is what a plain
/// file holds after its header, and what an encrypted file encrypts.
pub fn payload(gallery: &Gallery) -> Vec<u8> {
    let manifest = Manifest {
        model: gallery.model.clone(),
        heads_blurred: gallery.heads_blurred,
        entries: gallery
            .entries
            .iter()
            .map(|e| ManifestEntry {
                name: e.name.clone(),
                frames: e.frames,
                seen: e.seen.clone(),
                embedding: e.embedding.clone(),
                picture_type: e.picture_type.clone(),
                picture_bytes: e.picture.len(),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&manifest).expect("a manifest is always serialisable");
    let pictures: usize = gallery.entries.iter().map(|e| e.picture.len()).sum();
    let mut body = Vec::with_capacity(4 + json.len() + pictures);
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    body.extend_from_slice(&json);
    for e in &gallery.entries {
        body.extend_from_slice(&e.picture);
    }
    let mut out = Sha256::digest(&body).to_vec();
    out.extend_from_slice(&body);
    out
}

fn header(kind: u8) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[VERSION, kind]);
    out
}

/// A plain (unencrypted) gallery file.
pub fn write_plain(gallery: &Gallery) -> Vec<u8> {
    let mut out = header(PLAIN);
    out.extend_from_slice(&payload(gallery));
    out
}

/// An encrypted gallery file around `ciphertext` (AES-256-GCM of [`payload`], with the key
/// from PBKDF2-SHA-256 over the passphrase with `salt` and `iterations`).
pub fn write_sealed(sealed: &Sealed) -> Vec<u8> {
    let mut out = header(ENCRYPTED);
    out.extend_from_slice(&sealed.iterations.to_le_bytes());
    out.extend_from_slice(&sealed.salt);
    out.extend_from_slice(&sealed.iv);
    out.extend_from_slice(&sealed.ciphertext);
    out
}

/// Reads a gallery file: a plain one whole, an encrypted one up to its ciphertext.
pub fn read(bytes: &[u8]) -> Result<Read, FileError> {
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return error("this is not a gallery file (it does not start as one this app saves)");
    }
    let (version, kind) = (bytes[MAGIC.len()], bytes[MAGIC.len() + 1]);
    if version != VERSION {
        return error(format!(
            "this gallery file is of format version {version}; this app reads version {VERSION}"
        ));
    }
    let rest = &bytes[HEADER..];
    match kind {
        PLAIN => open_payload(rest).map(Read::Plain),
        ENCRYPTED => {
            const PARAMS: usize = 4 + SALT_BYTES + IV_BYTES;
            // AES-GCM's tag is 16 bytes.
            if rest.len() < PARAMS + 16 {
                return error("the gallery file is cut short: nothing was added");
            }
            let iterations = u32::from_le_bytes(rest[..4].try_into().unwrap());
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return error(format!(
                    "the gallery file asks for {iterations} key-derivation rounds, outside the \
                     {MIN_ITERATIONS} to {MAX_ITERATIONS} this app accepts: it was not saved by this app"
                ));
            }
            Ok(Read::Encrypted(Sealed {
                iterations,
                salt: rest[4..4 + SALT_BYTES].try_into().unwrap(),
                iv: rest[4 + SALT_BYTES..PARAMS].try_into().unwrap(),
                ciphertext: rest[PARAMS..].to_vec(),
            }))
        }
        other => error(format!("this gallery file is of an unknown kind ({other})")),
    }
}

/// Checks and reads a payload (a plain file's, or an encrypted file's once decrypted).
pub fn open_payload(payload: &[u8]) -> Result<Gallery, FileError> {
    if payload.len() < CHECKSUM + 4 {
        return error("the gallery file is cut short: nothing was added");
    }
    let (sum, body) = payload.split_at(CHECKSUM);
    if Sha256::digest(body).as_slice() != sum {
        return error(DAMAGED);
    }
    let json_len = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
    let Some(json) = body.get(4..4 + json_len) else {
        return error(DAMAGED);
    };
    let manifest: Manifest = serde_json::from_slice(json).map_err(|e| {
        FileError(format!(
            "the gallery file's list of people is unreadable: {e}"
        ))
    })?;
    if manifest.entries.len() > MAX_ENTRIES {
        return error(format!(
            "the gallery file has {} people, more than the {MAX_ENTRIES} this app opens",
            manifest.entries.len()
        ));
    }
    let dim = manifest.model.dim;
    let mut pictures = &body[4 + json_len..];
    let mut entries = Vec::with_capacity(manifest.entries.len());
    for e in manifest.entries {
        if e.embedding.len() != dim || e.embedding.iter().any(|v| !v.is_finite()) {
            return error(format!(
                "the gallery file's entry {:?} has no usable {dim}-wide embedding",
                e.name
            ));
        }
        if e.picture_bytes > pictures.len() {
            return error("the gallery file's pictures are cut short: nothing was added");
        }
        let (picture, rest) = pictures.split_at(e.picture_bytes);
        pictures = rest;
        entries.push(Entry {
            name: e.name,
            frames: e.frames,
            seen: e.seen,
            embedding: e.embedding,
            picture_type: e.picture_type,
            picture: picture.to_vec(),
        });
    }
    if !pictures.is_empty() {
        return error(
            "the gallery file has bytes its list does not account for: nothing was added",
        );
    }
    Ok(Gallery {
        model: manifest.model,
        heads_blurred: manifest.heads_blurred,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seen::When;

    fn gallery() -> Gallery {
        Gallery {
            model: ModelStamp {
                architecture: "MobileNetV2".into(),
                dim: 3,
                model: fingerprint(b"model"),
                aggregator: None,
            },
            heads_blurred: true,
            entries: vec![
                Entry {
                    name: "a.jpg".into(),
                    frames: None,
                    seen: None,
                    // Values whose shortest decimal form must read back to the same bits.
                    embedding: vec![0.1, -0.723_456_7, 1.0e-7],
                    picture_type: "image/jpeg".into(),
                    picture: vec![0xff, 0xd8, 1, 2, 3],
                },
                Entry {
                    name: "scene.webm #2 (0.4-3.0 s)".into(),
                    frames: Some(14),
                    seen: Some(Seen {
                        camera: "lobby".into(),
                        when: When::Video {
                            from_s: 0.4,
                            to_s: 3.0,
                        },
                    }),
                    embedding: vec![f32::MIN_POSITIVE, 0.577_350_26, -0.577_350_26],
                    picture_type: "image/png".into(),
                    picture: vec![0x89, b'P', b'N', b'G'],
                },
            ],
        }
    }

    #[test]
    fn a_plain_file_reads_back_bit_for_bit() {
        let g = gallery();
        let bytes = write_plain(&g);
        assert_eq!(&bytes[..12], MAGIC);
        assert_eq!(read(&bytes).unwrap(), Read::Plain(g));
    }

    #[test]
    fn an_encrypted_file_keeps_its_parameters_and_ciphertext() {
        let sealed = Sealed {
            iterations: ITERATIONS,
            salt: [7; SALT_BYTES],
            iv: [9; IV_BYTES],
            ciphertext: (0..40).collect(),
        };
        assert_eq!(
            read(&write_sealed(&sealed)).unwrap(),
            Read::Encrypted(sealed.clone())
        );
        let weak = Sealed {
            iterations: 1,
            ..sealed
        };
        let e = read(&write_sealed(&weak)).unwrap_err();
        assert!(e.0.contains("key-derivation rounds"), "{e}");
    }

    #[test]
    fn any_changed_byte_of_a_plain_file_is_caught() {
        let bytes = write_plain(&gallery());
        for at in HEADER..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            let e = read(&bad).unwrap_err();
            assert_eq!(e.0, DAMAGED, "byte {at}");
        }
    }

    #[test]
    fn cut_wrong_and_foreign_files_are_refused_in_words() {
        let bytes = write_plain(&gallery());
        for len in 0..bytes.len() {
            assert!(read(&bytes[..len]).is_err(), "cut at {len}");
        }
        let e = read(b"{\"images\": []}").unwrap_err();
        assert!(e.0.starts_with("this is not a gallery file"), "{e}");
        let mut newer = bytes.clone();
        newer[12] = 2;
        assert!(read(&newer).unwrap_err().0.contains("version 2"));
        let mut odd = bytes;
        odd[13] = 9;
        assert!(read(&odd).unwrap_err().0.contains("unknown kind"));
    }

    #[test]
    fn a_checksummed_body_that_lies_is_still_refused() {
        // Checksums hold, but an embedding is narrower than the model's, or bytes are left over.
        let mut g = gallery();
        g.entries[1].embedding.pop();
        let e = read(&write_plain(&g)).unwrap_err();
        assert!(e.0.contains("3-wide embedding"), "{e}");
        let mut g = gallery();
        g.entries[0].embedding[0] = f32::NAN;
        assert!(read(&write_plain(&g)).is_err());
        let mut body = payload(&gallery())[CHECKSUM..].to_vec();
        body.push(0);
        let mut p = Sha256::digest(&body).to_vec();
        p.extend_from_slice(&body);
        assert!(open_payload(&p).unwrap_err().0.contains("does not account"));
    }

    #[test]
    fn fingerprints_are_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
