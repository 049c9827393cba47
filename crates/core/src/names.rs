//! Wire names: enums whose variants travel as fixed strings.
//!
//! [`wire_names!`](crate::wire_names) declares such an enum once, with each
//! variant's string beside it. From that one list it derives `ALL`,
//! `as_str`, `parse`, `Display`, and — behind the crate features `serde`
//! and `openapi` — `Serialize`/`Deserialize` and a `utoipa` schema listing
//! exactly those strings. The server, the Rust client and `/openapi.json`
//! therefore cannot disagree about a name.

/// Declares an enum whose variants are written on the wire as the given
/// strings. See the [module docs](crate::names).
///
/// ```
/// playmark_core::wire_names! {
///     /// A colour.
///     pub enum Colour {
///         /// Like the sky.
///         Blue = "blue",
///         /// Like grass.
///         DarkGreen = "dark_green",
///     }
/// }
/// assert_eq!(Colour::DarkGreen.as_str(), "dark_green");
/// assert_eq!(Colour::parse("blue"), Some(Colour::Blue));
/// ```
#[macro_export]
macro_rules! wire_names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// The variant with this wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Every wire name, comma-separated, for error messages.
            pub fn names() -> &'static str {
                concat!($($wire, ", "),+).trim_end_matches(", ")
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::__wire_names_serde!($name);
        $crate::__wire_names_openapi!($name, [$($wire),+]);
    };
}

#[cfg(feature = "serde")]
#[doc(hidden)]
pub use serde as __serde;

#[cfg(feature = "openapi")]
#[doc(hidden)]
pub use utoipa as __utoipa;

#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_names_serde {
    ($name:ident) => {
        impl $crate::names::__serde::Serialize for $name {
            fn serialize<S: $crate::names::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::names::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::names::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl $crate::names::__serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        write!(f, "one of {}", $name::names())
                    }
                    fn visit_str<E: $crate::names::__serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v)
                            .ok_or_else(|| E::custom(format_args!("must be one of {}", $name::names())))
                    }
                }
                d.deserialize_str(Visitor)
            }
        }
    };
}

#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_names_serde {
    ($name:ident) => {};
}

#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_names_openapi {
    ($name:ident, [$($wire:literal),+]) => {
        impl $crate::names::__utoipa::PartialSchema for $name {
            fn schema() -> $crate::names::__utoipa::openapi::RefOr<$crate::names::__utoipa::openapi::schema::Schema> {
                use $crate::names::__utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some([$($wire),+])).into()
            }
        }

        impl $crate::names::__utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_names_openapi {
    ($name:ident, [$($wire:literal),+]) => {};
}
