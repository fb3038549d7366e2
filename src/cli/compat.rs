//! What cosign users type, accepted as they type it: boolean flags bare or with `=true` /
//! `=false`, and `--yes` where cosign would otherwise prompt.

use clap::{ArgAction, Args, Command};

/// `--yes`/`-y`, accepted wherever cosign has it. wharf never asks for confirmation (not
/// before uploading to the transparency log, not before signing), so the flag changes nothing;
/// it exists so cosign command lines and scripts run unchanged.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct AssumeYes {
    /// Accepted for cosign compatibility; wharf never prompts, so this changes nothing.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Makes every boolean flag of `cmd` and its subcommands accept what cosign's (Go pflag)
/// flags accept: `--flag` alone, `--flag=true`, `--flag=false` (and the other spellings of
/// `strconv.ParseBool`: 1/0, t/f, TRUE/FALSE...). The value is only ever attached with `=`, so
/// `--recursive IMAGE` still reads IMAGE as the image, as in cosign. Switches (absent: false)
/// and flags with a value of their own (`--tlog-upload`, default true) alike.
///
/// Done here over the built command rather than on each field so that no flag, including
/// those of commands added later, can forget it.
pub fn cosign_booleans(cmd: Command) -> Command {
    let bool_type = clap::value_parser!(bool).type_id();
    cmd.mut_args(|arg| {
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let valued = matches!(arg.get_action(), ArgAction::Set)
            && arg.get_value_parser().type_id() == bool_type;
        if !(switch || valued) {
            return arg;
        }
        let arg = arg
            .action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL")
            .value_parser(parse_bool);
        if switch {
            arg.default_value("false")
                .hide_default_value(true)
                .hide_possible_values(true)
        } else {
            arg
        }
    })
    .mut_subcommands(cosign_booleans)
}

/// Go's `strconv.ParseBool`, which cosign's flags use.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean: use true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgMatches};

    fn command() -> Command {
        cosign_booleans(
            Command::new("t")
                .arg(
                    Arg::new("recursive")
                        .long("recursive")
                        .short('r')
                        .action(ArgAction::SetTrue),
                )
                .arg(
                    Arg::new("quiet")
                        .long("quiet")
                        .short('q')
                        .action(ArgAction::SetTrue),
                )
                .arg(
                    Arg::new("tlog-upload")
                        .long("tlog-upload")
                        .action(ArgAction::Set)
                        .value_parser(clap::value_parser!(bool))
                        .default_value("true"),
                )
                .arg(Arg::new("jobs").long("jobs").short('j'))
                .arg(Arg::new("image"))
                .subcommand(
                    Command::new("sub").arg(Arg::new("yes").long("yes").action(ArgAction::SetTrue)),
                ),
        )
    }

    fn parse(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        command().try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn a_switch_is_false_absent_true_bare_and_takes_an_attached_value() {
        let m = parse(&[]).unwrap();
        assert!(!m.get_flag("recursive"));
        for (args, expected) in [
            (&["--recursive"][..], true),
            (&["--recursive=true"], true),
            (&["--recursive=false"], false),
            (&["--recursive=1"], true),
            (&["--recursive=F"], false),
            (&["-r"], true),
            (&["-r=false"], false),
        ] {
            let m = parse(args).unwrap();
            assert_eq!(m.get_flag("recursive"), expected, "{args:?}");
        }
    }

    #[test]
    fn a_flag_with_a_bool_value_keeps_its_default_and_may_be_bare() {
        let tlog = |args: &[&str]| *parse(args).unwrap().get_one::<bool>("tlog-upload").unwrap();
        assert!(tlog(&[]));
        assert!(tlog(&["--tlog-upload"]));
        assert!(!tlog(&["--tlog-upload=false"]));
        assert!(!tlog(&["--tlog-upload=0"]));
        // Other values are left alone.
        let m = parse(&["-j", "4"]).unwrap();
        assert_eq!(m.get_one::<String>("jobs").unwrap(), "4");
    }

    #[test]
    fn a_separate_word_after_a_switch_is_never_its_value() {
        let m = parse(&["--recursive", "false"]).unwrap();
        assert!(m.get_flag("recursive"));
        assert_eq!(m.get_one::<String>("image").unwrap(), "false");
        let m = parse(&["-q", "registry.example/app@sha256:00"]).unwrap();
        assert!(m.get_flag("quiet"));
        assert_eq!(
            m.get_one::<String>("image").unwrap(),
            "registry.example/app@sha256:00"
        );
    }

    #[test]
    fn subcommands_get_it_too_and_nonsense_is_refused() {
        let m = parse(&["sub", "--yes=true"]).unwrap();
        assert!(m.subcommand_matches("sub").unwrap().get_flag("yes"));
        let err = parse(&["--recursive=maybe"]).unwrap_err().to_string();
        assert!(err.contains("not a boolean"), "{err}");
    }
}
