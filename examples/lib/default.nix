# Build helpers for the example: derivations whose builder is busybox's
# shell. Builds have an empty PATH, so applets are called as
# `/bin/busybox <applet>`.
{ ... }:

let
  system = builtins.currentSystem;
  busybox = "/bin/busybox";
in
{
  inherit busybox;

  # A derivation built by `script`, which must create `$out` (and any other
  # outputs). `env` adds variables, e.g. other derivations to depend on.
  run = name: env: script: derivation ({
    inherit name system;
    builder = busybox;
    args = [ "sh" "-e" "-c" script ];
  } // env);

  # An executable busybox shell script, e.g. for an extra step's `command`.
  # It runs on the agent, where the usual PATH applies.
  writeScript = name: text: derivation {
    inherit name system;
    builder = busybox;
    args = [ "sh" "-e" "-c" ''${busybox} printf '%s' "$text" > $out; ${busybox} chmod +x $out'' ];
    text = "#!${busybox} sh\nset -e\n" + text;
  };
}
