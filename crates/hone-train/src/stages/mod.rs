//! The registry: every training stage, in pipeline order. A stage is one file in this folder that
//! implements [`StageDef`](crate::stage::StageDef), and one line below; the pipeline's steps, the CLI
//! subcommands, the config sections and their `--set` keys, the predecessor check and the report's
//! columns all come from here.

/// Declares the stage modules, the config sections of all stages (`StageSections`, one field per
/// stage under its name) and [`REGISTRY`].
macro_rules! registry {
    ($( $name:ident: $module:ident::$stage:ident ),* $(,)?) => {
        $( pub mod $module; )*

        hone_data::config_root! {
            /// The config section of every registered stage, each under the stage's name.
            pub struct StageSections {
                $( $name: <$module::$stage as $crate::stage::StageDef>::Config, )*
            }
        }

        /// Every registered stage, in pipeline order.
        pub static REGISTRY: &[&dyn $crate::stage::Stage] = &[ $( &$module::$stage, )* ];

        $(
            impl $crate::stage::Sectioned for $module::$stage {
                const KEY: &'static str = stringify!($name);
                fn section(all: &StageSections) -> &Self::Config {
                    &all.$name
                }
                fn section_mut(all: &mut StageSections) -> &mut Self::Config {
                    &mut all.$name
                }
            }
        )*
    };
}

registry! {
    base: base::Base,
    pretrain: pretrain::Pretrain,
    sft: sft::Sft,
    reward: reward::Reward,
    dpo: dpo::Dpo,
    rl: rl::Rl,
    orpo: orpo::Orpo,
    kto: kto::Kto,
}

/// The registered stage named `name`.
pub fn find(name: &str) -> Option<&'static dyn crate::stage::Stage> {
    REGISTRY.iter().copied().find(|s| s.info().name == name)
}

/// The registered stages' names, in pipeline order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.info().name).collect()
}
