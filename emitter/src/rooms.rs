//! Room arguments of `to`, `in_`, `except`, `sockets_join` and `sockets_leave`.

use rmpv::Value;

/// One room or several: `"room"`, `String`, `["a", "b"]`, `vec![..]`, `&[..]`.
///
/// Integers are numeric rooms, for sockets of a Node server that joined a *number*
/// (`socket.join(42)`): Node matches rooms with `===`, so `to(42)` reaches them and
/// `to("42")` does not. socketioxide servers treat both as the room `"42"`.
pub trait IntoRooms {
    /// The rooms, in order.
    fn into_rooms(self) -> Vec<Room>;
}

/// A room as it travels: a name, or a number (see [`IntoRooms`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Room {
    /// A room name.
    Name(String),
    /// A numeric room (Node sockets that joined a number).
    Number(i64),
}

impl Room {
    /// The text that goes into a channel name (`<key>#<nsp>#<room>#`).
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Room::Name(s) => s.as_str().into(),
            Room::Number(n) => n.to_string().into(),
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Room::Name(s) => Value::from(s.as_str()),
            Room::Number(n) => Value::from(*n),
        }
    }
}

impl From<&str> for Room {
    fn from(s: &str) -> Self {
        Room::Name(s.to_owned())
    }
}
impl From<String> for Room {
    fn from(s: String) -> Self {
        Room::Name(s)
    }
}
impl From<&String> for Room {
    fn from(s: &String) -> Self {
        Room::Name(s.clone())
    }
}
impl From<std::borrow::Cow<'_, str>> for Room {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        Room::Name(s.into_owned())
    }
}

macro_rules! numeric_rooms {
    ($($t:ty),*) => {$(
        impl From<$t> for Room {
            fn from(n: $t) -> Self {
                Room::Number(i64::from(n))
            }
        }
        impl IntoRooms for $t {
            fn into_rooms(self) -> Vec<Room> {
                vec![Room::from(self)]
            }
        }
    )*};
}
numeric_rooms!(i8, i16, i32, i64, u8, u16, u32);

impl IntoRooms for Room {
    fn into_rooms(self) -> Vec<Room> {
        vec![self]
    }
}
impl IntoRooms for &str {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.into()]
    }
}
impl IntoRooms for String {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.into()]
    }
}
impl IntoRooms for &String {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.into()]
    }
}
impl IntoRooms for std::borrow::Cow<'_, str> {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.into()]
    }
}
impl<T: Into<Room>> IntoRooms for Vec<T> {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<T: Into<Room>, const N: usize> IntoRooms for [T; N] {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<T: Into<Room> + Clone> IntoRooms for &[T] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter().cloned().map(Into::into).collect()
    }
}
impl<T: Into<Room> + Clone> IntoRooms for &Vec<T> {
    fn into_rooms(self) -> Vec<Room> {
        self.as_slice().into_rooms()
    }
}
impl<T: Into<Room> + Clone, const N: usize> IntoRooms for &[T; N] {
    fn into_rooms(self) -> Vec<Room> {
        self.as_slice().into_rooms()
    }
}

/// Adds `rooms` to `set` keeping the first occurrence (a JS `Set`).
pub(crate) fn add_all(set: &mut Vec<Room>, rooms: impl IntoRooms) {
    for room in rooms.into_rooms() {
        if !set.contains(&room) {
            set.push(room);
        }
    }
}
