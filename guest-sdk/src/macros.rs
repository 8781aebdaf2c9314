//! The registration macros: a component lists its orchestrators or its activities by
//! name, and the macro generates `names()`, the dispatch by name and the wit-bindgen
//! export of the world.

/// Registers the orchestrators of an orchestration component and exports the
/// `orchestration` world.
///
/// Each entry maps the name clients start to a function of the form
/// `fn(&Context) -> Result<O, Error>` or `fn(&Context, I) -> Result<O, Error>`, where
/// `I: DeserializeOwned` is decoded from the orchestration's input and
/// `O: Serialize` is its output. An input that does not decode as `I` fails the run with
/// `bad input`, naming the orchestrator and quoting the input; a name that is not listed
/// fails it with the list of names.
///
/// ```no_run
/// use weft_sdk::{Context, Error};
///
/// weft_sdk::orchestrators! {
///     "E1_HelloSequence" => hello_sequence,
///     "Greet" => greet,
/// }
///
/// fn hello_sequence(ctx: &Context) -> Result<Vec<String>, Error> {
///     let mut outputs = Vec::new();
///     for city in ["Tokyo", "Seattle", "London"] {
///         outputs.push(ctx.call_activity("E1_SayHello", &city).get()?);
///     }
///     Ok(outputs)
/// }
///
/// fn greet(ctx: &Context, name: String) -> Result<String, Error> {
///     Ok(ctx.call_activity("E1_SayHello", &name).get()?)
/// }
/// # fn main() {}
/// ```
///
/// Invoke it once per crate, at the crate's top level, and not in a crate that invokes
/// [`activities!`](crate::activities): a component provides one world.
#[macro_export]
macro_rules! orchestrators {
    ($($name:literal => $function:expr),+ $(,)?) => {
        /// The orchestrators of this component, as registered with
        /// `weft_sdk::orchestrators!`.
        struct __WeftOrchestrators;

        impl $crate::orchestration::bindings::exports::weft::orchestration::orchestrator::Guest
            for __WeftOrchestrators
        {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$(::std::string::String::from($name)),+]
            }

            fn run(
                name: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::orchestration::bindings::weft::orchestration::types::RunError,
            > {
                $(
                    if name == $name {
                        return $crate::orchestration::__run($name, $function);
                    }
                )+
                ::std::result::Result::Err($crate::orchestration::__unknown_name(
                    ::std::vec![$(::std::string::String::from($name)),+],
                ))
            }
        }

        $crate::orchestration::bindings::export_orchestration!(
            __WeftOrchestrators with_types_in $crate::orchestration::bindings
        );
    };
}

/// Registers the activities of an activity component and exports the `activities`
/// world.
///
/// Each entry maps an activity's name to a function `fn(I) -> Result<O, Error>`, where
/// `I: DeserializeOwned` is decoded from the call's input and `O: Serialize` is its
/// output. An input that does not decode as `I` fails the attempt with `bad input`,
/// naming the activity and quoting the input; a name that is not listed fails it with
/// the list of names.
///
/// ```no_run
/// use weft_sdk::Error;
///
/// weft_sdk::activities! {
///     "E1_SayHello" => say_hello,
/// }
///
/// fn say_hello(city: String) -> Result<String, Error> {
///     Ok(format!("Hello {city}!"))
/// }
/// # fn main() {}
/// ```
///
/// Invoke it once per crate, at the crate's top level, and not in a crate that invokes
/// [`orchestrators!`](crate::orchestrators): a component provides one world.
#[macro_export]
macro_rules! activities {
    ($($name:literal => $function:expr),+ $(,)?) => {
        /// The activities of this component, as registered with `weft_sdk::activities!`.
        struct __WeftActivities;

        impl $crate::activity::bindings::exports::weft::orchestration::activity::Guest
            for __WeftActivities
        {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$(::std::string::String::from($name)),+]
            }

            fn run(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::activity::bindings::weft::orchestration::types::RunError,
            > {
                $(
                    if name == $name {
                        return $crate::activity::__run($name, &input, $function);
                    }
                )+
                ::std::result::Result::Err($crate::activity::__unknown_name(
                    ::std::vec![$(::std::string::String::from($name)),+],
                ))
            }
        }

        $crate::activity::bindings::export_activities!(
            __WeftActivities with_types_in $crate::activity::bindings
        );
    };
}
