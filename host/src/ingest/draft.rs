//! An event read from its input and not yet copied out of it: the parser's output,
//! which becomes an owned [`Event`] or goes straight into the wire encoding the inbox
//! stores ([`Encoded`]) without a copy of each string in between.

use std::borrow::Cow;

use aer_wire::{Context, Entity, Event, EventEncoder, Location};

/// An event whose text borrows from the input where it can.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft<'a> {
    /// [`Event::id`].
    pub id: Cow<'a, str>,
    /// [`Event::time_ms`].
    pub time_ms: i64,
    /// [`Event::action`].
    pub action: Cow<'a, str>,
    /// [`Event::actor`].
    pub actor: DraftEntity<'a>,
    /// [`Event::target`].
    pub target: Option<DraftEntity<'a>>,
    /// The context's ip, user agent and session id, then the location's kind, id, name
    /// and domain ([`Event::context`]).
    pub context: [Cow<'a, str>; 7],
    /// [`Event::details`], each name as a prefix (`actor`, `entity`, `context`,
    /// `entry`, or none) and a key.
    pub details: Vec<(Name<'a>, Cow<'a, str>)>,
}

/// [`Entity`], borrowing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DraftEntity<'a> {
    /// [`Entity::kind`].
    pub kind: Cow<'a, str>,
    /// [`Entity::id`].
    pub id: Cow<'a, str>,
    /// [`Entity::name`].
    pub name: Cow<'a, str>,
    /// [`Entity::email`].
    pub email: Cow<'a, str>,
}

/// A detail's name: `prefix.key`, or `key` alone when the prefix is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Name<'a> {
    /// Where in the input the detail came from, or empty.
    pub prefix: &'static str,
    /// Its key there.
    pub key: Cow<'a, str>,
}

impl<'a> Name<'a> {
    /// A name with no prefix.
    pub fn plain(key: Cow<'a, str>) -> Self {
        Name { prefix: "", key }
    }

    /// `prefix.key`.
    pub fn under(prefix: &'static str, key: Cow<'a, str>) -> Self {
        Name { prefix, key }
    }

    fn parts(&self) -> [&str; 3] {
        if self.prefix.is_empty() {
            ["", "", &self.key]
        } else {
            [self.prefix, ".", &self.key]
        }
    }

    fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    fn into_string(self) -> String {
        if self.prefix.is_empty() {
            self.key.into_owned()
        } else {
            self.parts().concat()
        }
    }
}

impl DraftEntity<'_> {
    fn fields(&self) -> [&str; 4] {
        [&self.kind, &self.id, &self.name, &self.email]
    }

    fn into_entity(self) -> Entity {
        Entity {
            kind: self.kind.into_owned(),
            id: self.id.into_owned(),
            name: self.name.into_owned(),
            email: self.email.into_owned(),
        }
    }
}

impl Draft<'_> {
    /// Bytes of text the event carries, as [`Event::text_bytes`] counts them.
    pub fn text_bytes(&self) -> usize {
        let entity = |e: &DraftEntity<'_>| e.fields().iter().map(|s| s.len()).sum::<usize>();
        self.id.len()
            + self.action.len()
            + entity(&self.actor)
            + self.target.as_ref().map_or(0, entity)
            + self.context.iter().map(|s| s.len()).sum::<usize>()
            + self
                .details
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Append the event in the wire encoding, byte for byte what
    /// [`aer_wire::encode_event`] writes for the [`Event`] it becomes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = EventEncoder::begin(out, self.time_ms, self.target.is_some());
        w.str(&self.id);
        w.str(&self.action);
        for entity in std::iter::once(&self.actor).chain(self.target.as_ref()) {
            for s in entity.fields() {
                w.str(s);
            }
        }
        for s in &self.context {
            w.str(s);
        }
        w.details(self.details.len());
        for (name, value) in &self.details {
            w.detail(&name.parts(), value);
        }
        w.finish();
    }
}

impl From<Draft<'_>> for Event {
    fn from(d: Draft<'_>) -> Event {
        let [ip, user_agent, session_id, kind, id, name, domain] = d.context.map(Cow::into_owned);
        Event {
            id: d.id.into_owned(),
            time_ms: d.time_ms,
            action: d.action.into_owned(),
            actor: d.actor.into_entity(),
            target: d.target.map(DraftEntity::into_entity),
            context: Context {
                ip,
                user_agent,
                session_id,
                location: Location {
                    kind,
                    id,
                    name,
                    domain,
                },
            },
            details: d
                .details
                .into_iter()
                .map(|(k, v)| (k.into_string(), v.into_owned()))
                .collect(),
        }
    }
}

/// An event as the inbox stores it: its id and its wire encoding.
pub trait Storable {
    /// The event's id.
    fn id(&self) -> &str;
    /// Its [`aer_wire::encode_event`] bytes, written to `scratch` if need be.
    fn encoded<'s>(&'s self, scratch: &'s mut Vec<u8>) -> &'s [u8];
}

impl Storable for Event {
    fn id(&self) -> &str {
        &self.id
    }

    fn encoded<'s>(&'s self, scratch: &'s mut Vec<u8>) -> &'s [u8] {
        scratch.clear();
        aer_wire::encode_event(self, scratch);
        scratch
    }
}

impl Storable for Encoded {
    fn id(&self) -> &str {
        Encoded::id(self)
    }

    fn encoded<'s>(&'s self, _: &'s mut Vec<u8>) -> &'s [u8] {
        &self.bytes
    }
}

/// Bytes the wire encoding adds to an event's text, details aside: its length, time
/// and flags, and the lengths of its 17 strings when it has a target.
const ENCODING_OVERHEAD: usize = 4 + 8 + 1 + 4 * 17 + 4;

/// One event in the wire encoding, as the inbox stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// [`Event::time_ms`].
    pub time_ms: i64,
    /// [`aer_wire::encode_event`]'s bytes.
    pub bytes: Vec<u8>,
}

impl Encoded {
    /// The event's id.
    pub fn id(&self) -> &str {
        aer_wire::encoded_id(&self.bytes).unwrap_or_default()
    }
}

impl From<Draft<'_>> for Encoded {
    fn from(d: Draft<'_>) -> Encoded {
        let mut bytes =
            Vec::with_capacity(ENCODING_OVERHEAD + d.text_bytes() + 8 * d.details.len());
        d.encode(&mut bytes);
        Encoded {
            time_ms: d.time_ms,
            bytes,
        }
    }
}
