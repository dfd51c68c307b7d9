//! The playbook as written, read so that nothing in it can stop the reading:
//! every key is optional, values are kept as loose JSON with their position,
//! unknown keys are collected, and a value of the wrong shape (a list where a
//! mapping belongs) becomes [`Shaped::Wrong`]. Only broken YAML syntax ends
//! the read; `load` turns what was read into the model and reports every
//! problem at once.

use crate::yaml::Spanned;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Any YAML value, its kind decided later by the reader.
pub(super) type Loose = serde_json::Value;

/// A value that should have been a mapping (`T`), a list or a map of
/// entries, or what it was instead ("a list", "text"...).
pub(super) enum Shaped<T> {
    /// The expected shape.
    Value(T),
    /// Something else: what it was, for the message.
    Wrong(&'static str),
}

/// A struct read from a YAML mapping, key by key.
pub(super) trait FromMap<'de>: Sized {
    /// Reads the mapping's entries.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Visits any value: `on_map`/`on_seq` when it has the wanted shape,
/// otherwise [`Shaped::Wrong`] after consuming it.
struct ShapeVisitor<F>(F);

macro_rules! wrong_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("a boolean"))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("a number"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("a number"))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("a number"))
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("text"))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("empty"))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Shaped::Wrong("empty"))
        }
    };
}

/// Marker: a mapping read into `T`.
struct AsMap<T>(PhantomData<T>);
/// Marker: a list of `T`.
struct AsList<T>(PhantomData<T>);
/// Marker: a mapping of arbitrary keys to `T`.
struct AsEntries<T>(PhantomData<T>);

impl<'de, T: FromMap<'de>> Visitor<'de> for ShapeVisitor<AsMap<T>> {
    type Value = Shaped<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_map(map).map(Shaped::Value)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shaped::Wrong("a list"))
    }
    wrong_scalars!();
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<AsList<T>> {
    type Value = Shaped<Vec<T>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Shaped::Value(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shaped::Wrong("a mapping"))
    }
    wrong_scalars!();
}

/// Entries of a mapping with keys of the author's choosing, in file order.
pub(super) type Entries<T> = Vec<(Spanned<String>, Spanned<T>)>;

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<AsEntries<T>> {
    type Value = Shaped<Entries<T>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Shaped::Value(entries))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shaped::Wrong("a list"))
    }
    wrong_scalars!();
}

/// A mapping read into `T`.
pub(super) struct Map<T>(pub Shaped<T>);
/// A list of `T`.
pub(super) struct List<T>(pub Shaped<Vec<T>>);
/// A mapping of the author's keys to `T`.
pub(super) struct Keyed<T>(pub Shaped<Entries<T>>);

impl<'de, T: FromMap<'de>> Deserialize<'de> for Map<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(AsMap::<T>(PhantomData)))
            .map(Map)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(AsList::<T>(PhantomData)))
            .map(List)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Keyed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(AsEntries::<T>(PhantomData)))
            .map(Keyed)
    }
}

/// A struct of optional, spanned fields read from a mapping by key, with
/// the keys it does not know kept for diagnostics. `KEYS` lists the known
/// ones (for "did you mean").
macro_rules! raw_struct {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Default)]
        pub(super) struct $name {
            $(pub $field: Option<Spanned<$ty>>,)*
            /// Keys this struct does not have.
            pub unknown: Vec<Spanned<String>>,
        }

        impl $name {
            /// The keys it knows.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl<'de> FromMap<'de> for $name {
            fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut out = Self::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        $($key => out.$field = Some(map.next_value()?),)*
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            out.unknown.push(key);
                        }
                    }
                }
                Ok(out)
            }
        }
    };
}

raw_struct! {
    /// The whole file.
    RawPlaybook {
        name: Loose = "name",
        version: Loose = "version",
        description: Loose = "description",
        owner: Loose = "owner",
        purpose: Loose = "purpose",
        escalation: Loose = "escalation",
        limits: List<Spanned<Loose>> = "limits",
        inputs: Keyed<Map<RawInput>> = "inputs",
        dedup: Loose = "dedup",
        group: Map<RawGroup> = "group",
        steps: List<Spanned<Map<RawStep>>> = "steps",
        outputs: Keyed<Loose> = "outputs",
    }
}

raw_struct! {
    /// One declared input.
    RawInput {
        r#type: Loose = "type",
        required: Loose = "required",
        default: Loose = "default",
        description: Loose = "description",
        from: Loose = "from",
    }
}

raw_struct! {
    /// One step.
    RawStep {
        id: Loose = "id",
        uses: Loose = "uses",
        approval: Map<RawApproval> = "approval",
        auto_approve: Loose = "auto_approve",
        with: Keyed<Loose> = "with",
        needs: List<Spanned<Loose>> = "needs",
        trigger: Loose = "trigger",
        condition: Loose = "if",
        retry: Map<RawRetry> = "retry",
        timeout: Loose = "timeout",
        on_error: Loose = "on_error",
        for_each: Loose = "for_each",
    }
}

raw_struct! {
    /// An approval gate.
    RawApproval {
        approvers: List<Spanned<Loose>> = "approvers",
        min_approvals: Loose = "min_approvals",
        min_approvals_if: List<Spanned<Map<RawMinIf>>> = "min_approvals_if",
        timeout: Loose = "timeout",
        handoff: Map<RawHandoff> = "handoff",
        notify: Map<RawNotify> = "notify",
    }
}

raw_struct! {
    /// One rule raising an approval's quorum.
    RawMinIf {
        when: Loose = "when",
        min_approvals: Loose = "min_approvals",
    }
}

raw_struct! {
    /// Alert grouping: alerts with one key while its run is open join it.
    RawGroup {
        key: Loose = "key",
        window: Loose = "window",
        reopen_within: Loose = "reopen_within",
    }
}

raw_struct! {
    /// What an approver is shown.
    RawHandoff {
        summary: Loose = "summary",
        why: Loose = "why",
        affected: Loose = "affected",
        recommended_action: Loose = "recommended_action",
        uncertainties: Loose = "uncertainties",
    }
}

raw_struct! {
    /// Where a gate also asks.
    RawNotify {
        plugin: Loose = "plugin",
        channel: Loose = "channel",
    }
}

raw_struct! {
    /// A retry policy.
    RawRetry {
        max_attempts: Loose = "max_attempts",
        initial_delay: Loose = "initial_delay",
        max_delay: Loose = "max_delay",
        multiplier: Loose = "multiplier",
        jitter: Loose = "jitter",
    }
}

/// "a list", "a number"... for a loose value, in messages.
pub(super) fn kind_of(value: &Loose) -> &'static str {
    match value {
        Loose::Null => "empty",
        Loose::Bool(_) => "a boolean",
        Loose::Number(_) => "a number",
        Loose::String(_) => "text",
        Loose::Array(_) => "a list",
        Loose::Object(_) => "a mapping",
    }
}
