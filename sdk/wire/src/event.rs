//! The event model: owned events for the host, borrowed views for plugins.

/// An audit event as AER sees it, whatever its source format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// Unique event id (Slack's entry `id`); used to deduplicate ingest.
    pub id: String,
    /// Event time in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Action name exactly as the source spells it, e.g. `file_downloaded`.
    pub action: String,
    /// Who did it.
    pub actor: Entity,
    /// What it was done to, when the source names something.
    pub target: Option<Entity>,
    /// Where it came from.
    pub context: Context,
    /// Action-specific details as key/value text, in source order. Nested values are
    /// kept as JSON text.
    pub details: Vec<(String, String)>,
}

/// A user, file, channel, app or other thing named by an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entity {
    /// Entity type, e.g. `user`, `file`, `channel`.
    pub kind: String,
    /// Entity id, e.g. `W123AB456`.
    pub id: String,
    /// Display name or title.
    pub name: String,
    /// Email address, for users.
    pub email: String,
}

/// Where an event came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Client IP address as the source gave it (kept raw, even when malformed).
    pub ip: String,
    /// Client user agent (may be empty).
    pub user_agent: String,
    /// Session id as text (empty when the source had none).
    pub session_id: String,
    /// Workspace or enterprise the event happened in.
    pub location: Location,
}

/// The workspace or enterprise an event happened in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// `workspace` or `enterprise`.
    pub kind: String,
    /// Location id.
    pub id: String,
    /// Location name.
    pub name: String,
    /// Location domain.
    pub domain: String,
}

/// A borrowed view of an [`Event`], as decoded from a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Unique event id.
    pub id: &'a str,
    /// Event time in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Action name.
    pub action: &'a str,
    /// Who did it.
    pub actor: EntityRef<'a>,
    /// What it was done to.
    pub target: Option<EntityRef<'a>>,
    /// Where it came from.
    pub context: ContextRef<'a>,
    pub(crate) details: DetailsRef<'a>,
}

/// A borrowed view of an [`Entity`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntityRef<'a> {
    /// Entity type.
    pub kind: &'a str,
    /// Entity id.
    pub id: &'a str,
    /// Display name or title.
    pub name: &'a str,
    /// Email address.
    pub email: &'a str,
}

/// A borrowed view of a [`Context`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextRef<'a> {
    /// Client IP address, raw.
    pub ip: &'a str,
    /// Client user agent.
    pub user_agent: &'a str,
    /// Session id as text.
    pub session_id: &'a str,
    /// Workspace or enterprise.
    pub location: LocationRef<'a>,
}

/// A borrowed view of a [`Location`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocationRef<'a> {
    /// `workspace` or `enterprise`.
    pub kind: &'a str,
    /// Location id.
    pub id: &'a str,
    /// Location name.
    pub name: &'a str,
    /// Location domain.
    pub domain: &'a str,
}

/// The encoded details of one event: a count and the bytes of its key/value pairs,
/// decoded on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DetailsRef<'a> {
    pub(crate) count: u32,
    pub(crate) bytes: &'a [u8],
}

impl<'a> EventRef<'a> {
    /// The value of detail `key`, if the event has it.
    pub fn detail(&self, key: &str) -> Option<&'a str> {
        self.details().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every detail as (key, value), in source order.
    pub fn details(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        crate::codec::DetailsIter::new(self.details)
    }

    /// Copy the view into an owned [`Event`].
    pub fn to_owned_event(&self) -> Event {
        let entity = |e: &EntityRef<'_>| Entity {
            kind: e.kind.to_owned(),
            id: e.id.to_owned(),
            name: e.name.to_owned(),
            email: e.email.to_owned(),
        };
        Event {
            id: self.id.to_owned(),
            time_ms: self.time_ms,
            action: self.action.to_owned(),
            actor: entity(&self.actor),
            target: self.target.as_ref().map(entity),
            context: Context {
                ip: self.context.ip.to_owned(),
                user_agent: self.context.user_agent.to_owned(),
                session_id: self.context.session_id.to_owned(),
                location: Location {
                    kind: self.context.location.kind.to_owned(),
                    id: self.context.location.id.to_owned(),
                    name: self.context.location.name.to_owned(),
                    domain: self.context.location.domain.to_owned(),
                },
            },
            details: self
                .details()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl Event {
    /// Bytes of text the event carries (every string field, detail keys and values):
    /// what bounds its size in the inbox and in a batch.
    pub fn text_bytes(&self) -> usize {
        let entity = |e: &Entity| e.kind.len() + e.id.len() + e.name.len() + e.email.len();
        let l = &self.context.location;
        self.id.len()
            + self.action.len()
            + entity(&self.actor)
            + self.target.as_ref().map_or(0, entity)
            + self.context.ip.len()
            + self.context.user_agent.len()
            + self.context.session_id.len()
            + l.kind.len()
            + l.id.len()
            + l.name.len()
            + l.domain.len()
            + self
                .details
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// The value of detail `key`, if the event has it.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
