//! Msgpack with every encoding choice explicit: the generator needs integers in a given
//! width, strings as `str8` or `bin`, and bytes no encoder would write.

/// How an integer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntFmt {
    /// The smallest encoding (what notepack and rmp write).
    Auto,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

/// How a string is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrFmt {
    /// fixstr / str8 / str16 by length.
    Auto,
    Str8,
    Str16,
    Str32,
    /// As msgpack `bin` (what some producers write for every string).
    Bin,
}

/// A msgpack value with its encoding.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum W {
    Nil,
    Bool(bool),
    Int(i128, IntFmt),
    F32(f32),
    F64(f64),
    Str(String, StrFmt),
    Bin(Vec<u8>),
    Arr(Vec<W>),
    Map(Vec<(W, W)>),
    /// Bytes written as they are (ext types, reserved markers, truncations).
    Raw(Vec<u8>),
}

/// A string, smallest encoding.
pub(crate) fn s(v: &str) -> W {
    W::Str(v.to_owned(), StrFmt::Auto)
}

/// An integer, smallest encoding.
pub(crate) fn int(v: i128) -> W {
    W::Int(v, IntFmt::Auto)
}

/// A map with string keys.
pub(crate) fn map(entries: Vec<(&str, W)>) -> W {
    W::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

impl W {
    /// The msgpack bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            W::Nil => out.push(0xc0),
            W::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            W::Int(v, fmt) => write_int(out, *v, *fmt),
            W::F32(f) => {
                out.push(0xca);
                out.extend(f.to_be_bytes());
            }
            W::F64(f) => {
                out.push(0xcb);
                out.extend(f.to_be_bytes());
            }
            W::Str(text, fmt) => {
                let b = text.as_bytes();
                let n = b.len();
                match fmt {
                    StrFmt::Auto if n < 32 => out.push(0xa0 | n as u8),
                    StrFmt::Auto if n < 256 => out.extend([0xd9, n as u8]),
                    StrFmt::Auto | StrFmt::Str16 => {
                        out.push(0xda);
                        out.extend((n as u16).to_be_bytes());
                    }
                    StrFmt::Str8 => out.extend([0xd9, n as u8]),
                    StrFmt::Str32 => {
                        out.push(0xdb);
                        out.extend((n as u32).to_be_bytes());
                    }
                    StrFmt::Bin => out.extend([0xc4, n as u8]),
                }
                out.extend(b);
            }
            W::Bin(b) => {
                out.extend([0xc4, b.len() as u8]);
                out.extend(b);
            }
            W::Arr(items) => {
                let n = items.len();
                if n < 16 {
                    out.push(0x90 | n as u8);
                } else {
                    out.push(0xdc);
                    out.extend((n as u16).to_be_bytes());
                }
                for i in items {
                    i.write(out);
                }
            }
            W::Map(entries) => {
                let n = entries.len();
                if n < 16 {
                    out.push(0x80 | n as u8);
                } else {
                    out.push(0xde);
                    out.extend((n as u16).to_be_bytes());
                }
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
            W::Raw(b) => out.extend(b),
        }
    }

    /// The entry `key` of a map (string or bin key).
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut W> {
        let W::Map(entries) = self else { return None };
        entries
            .iter_mut()
            .find(|(k, _)| k.text() == Some(key))
            .map(|(_, v)| v)
    }

    /// Sets (or with `None` removes) the entry `key` of a map, keeping its position.
    pub(crate) fn set(&mut self, key: &str, v: Option<W>) {
        let W::Map(entries) = self else {
            panic!("set {key:?} on a non-map {self:?}")
        };
        let at = entries.iter().position(|(k, _)| k.text() == Some(key));
        match (at, v) {
            (Some(i), Some(v)) => entries[i].1 = v,
            (Some(i), None) => {
                entries.remove(i);
            }
            (None, Some(v)) => entries.push((s(key), v)),
            (None, None) => {}
        }
    }

    /// The same value as JSON, when JSON can say it (no bin, raw bytes, float32 or
    /// non-string keys; every string encoding is the same text).
    pub(crate) fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            W::Nil => J::Null,
            W::Bool(b) => J::Bool(*b),
            W::Int(v, _) => match (u64::try_from(*v), i64::try_from(*v)) {
                (Ok(u), _) => J::from(u),
                (_, Ok(i)) => J::from(i),
                _ => return None,
            },
            W::F64(f) => J::from(serde_json::Number::from_f64(*f)?),
            W::Str(text, fmt) if *fmt != StrFmt::Bin => J::from(text.as_str()),
            W::Arr(items) => J::Array(items.iter().map(W::to_json).collect::<Option<_>>()?),
            W::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| match k {
                        W::Str(k, fmt) if *fmt != StrFmt::Bin => Some((k.clone(), v.to_json()?)),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }

    fn text(&self) -> Option<&str> {
        match self {
            W::Str(t, _) => Some(t),
            _ => None,
        }
    }

    /// Every string (keys included, when `keys`) re-encoded with `fmt`.
    pub(crate) fn strings_as(&mut self, fmt: StrFmt, keys: bool, values: bool) {
        match self {
            W::Str(_, f) if values => *f = fmt,
            W::Arr(items) => items
                .iter_mut()
                .for_each(|i| i.strings_as(fmt, keys, values)),
            W::Map(entries) => {
                for (k, v) in entries {
                    if keys && let W::Str(_, f) = k {
                        *f = fmt;
                    }
                    v.strings_as(fmt, keys, values);
                }
            }
            _ => {}
        }
    }
}

fn write_int(out: &mut Vec<u8>, v: i128, fmt: IntFmt) {
    let fmt = match fmt {
        IntFmt::Auto => match v {
            0..=127 => return out.push(v as u8),
            -32..=-1 => return out.push(v as i8 as u8),
            128..=0xff => IntFmt::U8,
            0x100..=0xffff => IntFmt::U16,
            0x1_0000..=0xffff_ffff => IntFmt::U32,
            0x1_0000_0000.. => IntFmt::U64,
            -128..=-33 => IntFmt::I8,
            -32768..=-129 => IntFmt::I16,
            -2_147_483_648..=-32769 => IntFmt::I32,
            _ => IntFmt::I64,
        },
        f => f,
    };
    match fmt {
        IntFmt::U8 => out.extend([0xcc, v as u8]),
        IntFmt::U16 => {
            out.push(0xcd);
            out.extend((v as u16).to_be_bytes());
        }
        IntFmt::U32 => {
            out.push(0xce);
            out.extend((v as u32).to_be_bytes());
        }
        IntFmt::U64 => {
            out.push(0xcf);
            out.extend((v as u64).to_be_bytes());
        }
        IntFmt::I8 => out.extend([0xd0, v as i8 as u8]),
        IntFmt::I16 => {
            out.push(0xd1);
            out.extend((v as i16).to_be_bytes());
        }
        IntFmt::I32 => {
            out.push(0xd2);
            out.extend((v as i32).to_be_bytes());
        }
        IntFmt::I64 => {
            out.push(0xd3);
            out.extend((v as i64).to_be_bytes());
        }
        IntFmt::Auto => unreachable!("resolved above"),
    }
}
