//! The synthetic world's `attributes.json` as the multi-label targets of an attribute head:
//! each identity becomes a vector of 0/1 labels with fixed names, in the spirit of the
//! Market-1501 attribute annotations (Lin et al. 2019): hair length, garment types, carried
//! things, and the colour names of the upper and lower garments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::identity::{
    clothing_colour_name, BottomKind, Colour, HairStyle, Pattern, TopKind, CLOTHING_COLOUR_NAMES,
};

/// The labels of every identity of one `attributes.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeTable {
    /// Label names, in the order of every vector.
    pub names: Vec<String>,
    by_pid: BTreeMap<u32, Vec<f32>>,
}

/// Why an attribute file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AttributeError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not the synthetic world's attribute list: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: identity {pid} appears twice")]
    Duplicate { path: PathBuf, pid: u32 },
}

#[derive(Deserialize)]
struct Person {
    pid: u32,
    hair_style: HairStyle,
    top: Garment<TopKind>,
    bottom: Garment<BottomKind>,
    accessories: Accessories,
}

#[derive(Deserialize)]
struct Garment<K> {
    kind: K,
    colour: Colour,
    pattern: Pattern,
}

#[derive(Deserialize)]
struct Accessories {
    backpack: Option<Colour>,
    handbag: Option<Colour>,
    hat: Option<Colour>,
    glasses: bool,
}

const TOPS: [(TopKind, &str); 4] = [
    (TopKind::TShirt, "t_shirt"),
    (TopKind::Shirt, "shirt"),
    (TopKind::Coat, "coat"),
    (TopKind::Dress, "dress"),
];
const BOTTOMS: [(BottomKind, &str); 3] = [
    (BottomKind::Trousers, "trousers"),
    (BottomKind::Shorts, "shorts"),
    (BottomKind::Skirt, "skirt"),
];

/// The label names, in vector order.
pub fn attribute_names() -> Vec<String> {
    let mut names = vec!["long_hair".to_string()];
    names.extend(TOPS.iter().map(|(_, n)| format!("top_{n}")));
    names.extend(BOTTOMS.iter().map(|(_, n)| format!("bottom_{n}")));
    names.extend(
        ["top_patterned", "backpack", "handbag", "hat", "glasses"]
            .iter()
            .map(|n| n.to_string()),
    );
    for part in ["top", "bottom"] {
        names.extend(CLOTHING_COLOUR_NAMES.iter().map(|c| format!("{part}_{c}")));
    }
    names
}

fn labels(person: &Person) -> Vec<f32> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut v = vec![flag(matches!(
        person.hair_style,
        HairStyle::Long | HairStyle::Ponytail
    ))];
    v.extend(TOPS.iter().map(|(k, _)| flag(*k == person.top.kind)));
    v.extend(BOTTOMS.iter().map(|(k, _)| flag(*k == person.bottom.kind)));
    let a = &person.accessories;
    v.extend([
        flag(person.top.pattern != Pattern::Plain),
        flag(a.backpack.is_some()),
        flag(a.handbag.is_some()),
        flag(a.hat.is_some()),
        flag(a.glasses),
    ]);
    for colour in [person.top.colour, person.bottom.colour] {
        let name = clothing_colour_name(colour);
        v.extend(CLOTHING_COLOUR_NAMES.iter().map(|c| flag(*c == name)));
    }
    v
}

impl AttributeTable {
    /// Reads an `attributes.json` written by `reid synth`.
    pub fn read(path: &Path) -> Result<Self, AttributeError> {
        let bytes = std::fs::read(path).map_err(|source| AttributeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of an `attributes.json` (`path` names it in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, AttributeError> {
        let people: Vec<Person> =
            serde_json::from_slice(bytes).map_err(|source| AttributeError::Format {
                path: path.to_path_buf(),
                source,
            })?;
        let mut by_pid = BTreeMap::new();
        for person in &people {
            if by_pid.insert(person.pid, labels(person)).is_some() {
                return Err(AttributeError::Duplicate {
                    path: path.to_path_buf(),
                    pid: person.pid,
                });
            }
        }
        Ok(Self {
            names: attribute_names(),
            by_pid,
        })
    }

    /// The labels of identity `pid`, if the file has it.
    pub fn get(&self, pid: u32) -> Option<&[f32]> {
        self.by_pid.get(&pid).map(Vec::as_slice)
    }

    /// Number of labels per identity.
    pub fn width(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"[{"split": "train", "pid": 7, "height": 1.0, "build": 1.0,
        "skin": [0.9, 0.7, 0.6], "hair_style": "ponytail", "hair_colour": [0.1, 0.1, 0.1],
        "top": {"kind": "coat", "colour": [0.11, 0.15, 0.29], "pattern": "stripes",
                "pattern_colour": [1, 1, 1]},
        "bottom": {"kind": "skirt", "colour": [0.82, 0.44, 0.13], "pattern": "plain",
                   "pattern_colour": [0, 0, 0]},
        "shoes": [0, 0, 0],
        "accessories": {"backpack": [0.2, 0.2, 0.2], "handbag": null, "hat": null,
                        "glasses": true},
        "lookalike_of": null}]"#;

    #[test]
    fn an_identity_becomes_named_labels() {
        let table = AttributeTable::parse(ONE.as_bytes(), Path::new("a.json")).unwrap();
        let on: Vec<&str> = table
            .names
            .iter()
            .zip(table.get(7).unwrap())
            .filter(|(_, v)| **v == 1.0)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            on,
            [
                "long_hair",
                "top_coat",
                "bottom_skirt",
                "top_patterned",
                "backpack",
                "glasses",
                "top_blue",
                "bottom_red"
            ]
        );
        assert_eq!(table.width(), 33);
        assert!(table.get(8).is_none());
    }

    #[test]
    fn a_file_that_is_not_an_attribute_list_is_refused_by_name() {
        let err = AttributeTable::parse(b"{\"pid\": 1}", Path::new("x/attributes.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/attributes.json"), "{err}");
        let twice = format!("[{},{}]", &ONE[1..ONE.len() - 1], &ONE[1..ONE.len() - 1]);
        let err = AttributeTable::parse(twice.as_bytes(), Path::new("a.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("identity 7 appears twice"), "{err}");
    }

    #[test]
    fn every_palette_colour_keeps_its_name() {
        // A garment colour is a palette colour jittered by a few per cent: the name survives.
        for (colour, name) in [
            ([0.07, 0.07, 0.08], "black"),
            ([0.60, 0.60, 0.62], "grey"),
            ([0.25, 0.36, 0.55], "blue"),
            ([0.76, 0.68, 0.52], "brown"),
            ([0.90, 0.80, 0.20], "yellow"),
        ] {
            assert_eq!(clothing_colour_name(colour), name);
            let jittered = colour.map(|v: f32| (v * 1.05 + 0.02).min(1.0));
            assert_eq!(clothing_colour_name(jittered), name, "{colour:?}");
        }
    }
}
