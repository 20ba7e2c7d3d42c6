# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_custodyd_global_optspecs
    string join \n log-format= h/help V/version
end

function __fish_custodyd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_custodyd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_custodyd_using_subcommand
    set -l cmd (__fish_custodyd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c custodyd -n "__fish_custodyd_needs_command" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_needs_command" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_needs_command" -s V -l version -d 'Print version'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "run" -d 'Run the daemon'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "check-config" -d 'Validate a configuration file: print a summary and exit 0, or every error and exit 2'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "demo" -d 'Run the whole pipeline with simulated readers and an embedded broker (or --broker); no hardware needed'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "tail" -d 'Print the gateway\'s MQTT messages as they arrive, one line each'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "devices" -d 'List serial ports, HID scanners and GPIO chips, with the `path` to configure'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "key" -d 'The device key that signs this gateway\'s custody log checkpoints'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "verify" -d 'Check captured events and checkpoints (`mosquitto_sub -v` output) against a gateway\'s key: exit 0 if everything verifies, 1 if not, 2 if the input cannot be read'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "keygen" -d 'Make an Ed25519 key pair for central to sign control messages with (docs/trust.md): writes the private key file, prints the public key for `[trust] central_keys`'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "sign" -d 'Sign a control message read as JSON from stdin for `--topic`; prints the envelope to publish (adds topic and issued_at, and on command topics id and not_after, where the object lacks them)'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "spool" -d 'Look into the spool of a stopped daemon'
complete -c custodyd -n "__fish_custodyd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custodyd -n "__fish_custodyd_using_subcommand run" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand run" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand run" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand check-config" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand check-config" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand demo" -l broker -d 'Use this broker (e.g. mqtt://127.0.0.1:1883) instead of the embedded one' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand demo" -l duration -d 'Stop after this long (e.g. `30s`, `2m`); without it, run until Ctrl-C' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand demo" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand demo" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand tail" -l config -d 'The gateway\'s configuration: broker, login, TLS and topic names' -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand tail" -l location -d 'Only messages about this location (repeatable). Gateway-wide messages (status, health) have no location and are then left out' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand tail" -l kind -d 'Only these kinds of message (repeatable or comma-separated); default: all but `reads`' -r -f -a "custody\t''
alarm\t''
status\t''
health\t''
pass\t''
context\t''
cmd-reply\t''
reads\t'Raw reads, published only while commissioning: left out unless asked for'"
complete -c custodyd -n "__fish_custodyd_using_subcommand tail" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand tail" -l all-gateways -d 'Every gateway of the site, not only the configured one'
complete -c custodyd -n "__fish_custodyd_using_subcommand tail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c custodyd -n "__fish_custodyd_using_subcommand devices" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand devices" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and not __fish_seen_subcommand_from show help" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and not __fish_seen_subcommand_from show help" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and not __fish_seen_subcommand_from show help" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and not __fish_seen_subcommand_from show help" -f -a "show" -d 'Print the public key (base64), as `verify --key` and the status message\'s `device_key` carry it'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and not __fish_seen_subcommand_from show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and __fish_seen_subcommand_from show" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and __fish_seen_subcommand_from show" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and __fish_seen_subcommand_from show" -l verifier-key -d 'Print it as a signed-note verifier key (`site/gateway+hash+key`), for Go\'s golang.org/x/mod/sumdb/note and its ports'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the public key (base64), as `verify --key` and the status message\'s `device_key` carry it'
complete -c custodyd -n "__fish_custodyd_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custodyd -n "__fish_custodyd_using_subcommand verify" -l key -d 'The gateway\'s public key, base64 of its 32 bytes: `custodyd key show` on the gateway, or `device_key` in its status message' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand verify" -l gateway -d 'Check only this gateway (`site/gateway`), where the captures hold several' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand verify" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand verify" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand keygen" -l key-id -d 'The key id gateways know it by (the `key` of each envelope)' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand keygen" -l out -d 'Where to write the private key (mode 0600; never overwritten)' -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand keygen" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand sign" -l key -d 'A key file written by `custodyd keygen`' -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand sign" -l topic -d 'The exact topic the envelope will be published on' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand sign" -l ttl -d 'Commands: how long they stay valid when the input has no not_after (at most 1h counts)' -r
complete -c custodyd -n "__fish_custodyd_using_subcommand sign" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand sign" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -f -a "stats" -d 'Depth, bytes, age of the oldest undelivered event, next seq, dead letters'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -f -a "peek" -d 'The dead letters (events too large to send), then the oldest undelivered events: one JSON object a line'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -f -a "drop-dead-letters" -d 'Delete dead letters (all with --all), printing each as `peek` does: keep the output, it is the only copy left'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and not __fish_seen_subcommand_from stats peek drop-dead-letters help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from stats" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from stats" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from peek" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from peek" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from peek" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from drop-dead-letters" -l config -r -F
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from drop-dead-letters" -l log-format -d 'Log format; `human` drops timestamps when stderr is the journal, which adds its own, and starts each line with its priority for it' -r -f -a "human\t''
json\t''"
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from drop-dead-letters" -l all
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from drop-dead-letters" -s h -l help -d 'Print help'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Depth, bytes, age of the oldest undelivered event, next seq, dead letters'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from help" -f -a "peek" -d 'The dead letters (events too large to send), then the oldest undelivered events: one JSON object a line'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from help" -f -a "drop-dead-letters" -d 'Delete dead letters (all with --all), printing each as `peek` does: keep the output, it is the only copy left'
complete -c custodyd -n "__fish_custodyd_using_subcommand spool; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "run" -d 'Run the daemon'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "check-config" -d 'Validate a configuration file: print a summary and exit 0, or every error and exit 2'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "demo" -d 'Run the whole pipeline with simulated readers and an embedded broker (or --broker); no hardware needed'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "tail" -d 'Print the gateway\'s MQTT messages as they arrive, one line each'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "devices" -d 'List serial ports, HID scanners and GPIO chips, with the `path` to configure'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "key" -d 'The device key that signs this gateway\'s custody log checkpoints'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "verify" -d 'Check captured events and checkpoints (`mosquitto_sub -v` output) against a gateway\'s key: exit 0 if everything verifies, 1 if not, 2 if the input cannot be read'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "keygen" -d 'Make an Ed25519 key pair for central to sign control messages with (docs/trust.md): writes the private key file, prints the public key for `[trust] central_keys`'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "sign" -d 'Sign a control message read as JSON from stdin for `--topic`; prints the envelope to publish (adds topic and issued_at, and on command topics id and not_after, where the object lacks them)'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "spool" -d 'Look into the spool of a stopped daemon'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and not __fish_seen_subcommand_from run check-config demo tail devices key verify keygen sign spool help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "show" -d 'Print the public key (base64), as `verify --key` and the status message\'s `device_key` carry it'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and __fish_seen_subcommand_from spool" -f -a "stats" -d 'Depth, bytes, age of the oldest undelivered event, next seq, dead letters'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and __fish_seen_subcommand_from spool" -f -a "peek" -d 'The dead letters (events too large to send), then the oldest undelivered events: one JSON object a line'
complete -c custodyd -n "__fish_custodyd_using_subcommand help; and __fish_seen_subcommand_from spool" -f -a "drop-dead-letters" -d 'Delete dead letters (all with --all), printing each as `peek` does: keep the output, it is the only copy left'
